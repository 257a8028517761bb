// Passkeys on Hearth's pages: the one script the pages serve (CSP `script-src 'self'`).
// A ceremony form carries the server's WebAuthn options (data-options, JSON with binary
// values in base64url) and data-mode "create" or "get"; its button runs the browser's
// WebAuthn call and posts the answer (field `credential`, JSON) with the form.
"use strict";
(function () {
  function bytes(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    var bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function text(buf) {
    if (!buf) return null;
    var bin = "", a = new Uint8Array(buf);
    for (var i = 0; i < a.length; i++) bin += String.fromCharCode(a[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function creation(o) {
    var pk = o.publicKey;
    pk.challenge = bytes(pk.challenge);
    pk.user.id = bytes(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
    return { publicKey: pk };
  }
  function request(o) {
    var pk = o.publicKey;
    pk.challenge = bytes(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
    return { publicKey: pk };
  }
  function answer(cred, mode) {
    var r = cred.response, out = { id: cred.id, rawId: text(cred.rawId), type: cred.type, extensions: {} };
    if (mode === "create") {
      out.response = { attestationObject: text(r.attestationObject), clientDataJSON: text(r.clientDataJSON) };
    } else {
      out.response = {
        authenticatorData: text(r.authenticatorData), clientDataJSON: text(r.clientDataJSON),
        signature: text(r.signature), userHandle: text(r.userHandle)
      };
    }
    return JSON.stringify(out);
  }
  function run(form) {
    var status = form.querySelector("[data-status]");
    var mode = form.getAttribute("data-mode");
    var options = JSON.parse(form.getAttribute("data-options"));
    if (!window.PublicKeyCredential) {
      status.textContent = "This browser does not support passkeys.";
      return;
    }
    status.textContent = "Waiting for your passkey…";
    var call = mode === "create"
      ? navigator.credentials.create(creation(options))
      : navigator.credentials.get(request(options));
    call.then(function (cred) {
      form.querySelector("[name=credential]").value = answer(cred, mode);
      form.submit();
    }, function (e) {
      status.textContent = "The passkey did not answer (" + e.name + "). Press the button to try again.";
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-mode]").forEach(function (form) {
      var go = form.querySelector("[data-go]");
      go.addEventListener("click", function () { run(form); });
    });
  });
})();
