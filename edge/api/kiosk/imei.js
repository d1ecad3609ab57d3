// The booth's IMEI rule (edge/imei.py), word for word, so the screen refuses what the booth would.
"use strict";
const BoothImei = (() => {
  const LENGTH = 15;
  function luhnOk(digits) {
    let total = 0;
    for (let i = 0; i < digits.length; i++) {
      let d = Number(digits[digits.length - 1 - i]);
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      total += d;
    }
    return total % 10 === 0;
  }
  // The booth's reason, or null when the IMEI is valid; policy is "luhn" or "digits".
  function check(value, policy) {
    if (value.length !== LENGTH || !/^[0-9]+$/.test(value)) {
      return "Invalid request: imei must be exactly 15 digits";
    }
    if (policy === "luhn" && !luhnOk(value)) return "Invalid request: imei check digit (Luhn) is wrong";
    return null;
  }
  return { check };
})();
