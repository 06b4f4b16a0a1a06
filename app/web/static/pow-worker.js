// Freehold sign-up proof of work (app/services/signup_proof.py): find a counter such that
// SHA-256(challenge ":" counter) starts with `bits` zero bits. One worker of several: it tries
// start, start + step, start + 2 step, ... and posts the first counter that solves.
// Plain-JavaScript SHA-256 rather than crypto.subtle: subtle exists only on https or localhost
// pages, costs a promise per hash, and cannot reuse the state of the challenge's first block.
"use strict";
var K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2]);
var W = new Int32Array(64);

function compress(H, bytes, off) {
  var i, a, b, c, d, e, f, g, h, t1, t2, x, y;
  for (i = 0; i < 16; i++) {
    x = off + 4 * i;
    W[i] = (bytes[x] << 24) | (bytes[x + 1] << 16) | (bytes[x + 2] << 8) | bytes[x + 3];
  }
  for (i = 16; i < 64; i++) {
    x = W[i - 15]; y = W[i - 2];
    W[i] = (W[i - 16] + (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) +
            W[i - 7] + (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) | 0;
  }
  a = H[0]; b = H[1]; c = H[2]; d = H[3]; e = H[4]; f = H[5]; g = H[6]; h = H[7];
  for (i = 0; i < 64; i++) {
    t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) +
          ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
    t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) +
          ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  H[0] = (H[0] + a) | 0; H[1] = (H[1] + b) | 0; H[2] = (H[2] + c) | 0; H[3] = (H[3] + d) | 0;
  H[4] = (H[4] + e) | 0; H[5] = (H[5] + f) | 0; H[6] = (H[6] + g) | 0; H[7] = (H[7] + h) | 0;
}

function zeroBits(H) {
  var n = 0;
  for (var i = 0; i < 8; i++) {
    if (H[i] !== 0) { return n + Math.clz32(H[i]); }
    n += 32;
  }
  return n;
}

function search(challenge, bits, start, step) {
  var prefix = new TextEncoder().encode(challenge + ":");
  var full = prefix.length - (prefix.length % 64);
  var mid = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  for (var off = 0; off < full; off += 64) { compress(mid, prefix, off); }  // same for all
  var rest = prefix.subarray(full);
  var tail = new Uint8Array(128);
  var H = new Int32Array(8);
  for (var counter = start; ; counter += step) {
    var digits = String(counter);
    var n = rest.length, i;
    tail.fill(0);
    tail.set(rest, 0);
    for (i = 0; i < digits.length; i++) { tail[n++] = digits.charCodeAt(i); }
    var bitLen = (prefix.length + digits.length) * 8;
    tail[n] = 0x80;
    var blocks = n + 9 <= 64 ? 1 : 2;
    var end = blocks * 64;
    tail[end - 4] = bitLen >>> 24; tail[end - 3] = bitLen >>> 16;
    tail[end - 2] = bitLen >>> 8; tail[end - 1] = bitLen;
    H.set(mid);
    compress(H, tail, 0);
    if (blocks === 2) { compress(H, tail, 64); }
    if (zeroBits(H) >= bits) { return counter; }
  }
}

self.onmessage = function (ev) {
  var m = ev.data;
  self.postMessage({ counter: search(m.challenge, m.bits, m.start, m.step) });
};
