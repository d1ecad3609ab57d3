"""Training of the booth's defect model on synthetic renders (needs the ``train`` extra)."""
