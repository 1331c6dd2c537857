/**
 * The JavaScript that runs inside every sandbox before contract code. It takes the host bridge
 * functions off the global object, removes whatever could observe the host or make a run depend on
 * the machine, and installs the `loopchain` global that contracts use. It also carries the
 * sandbox half of value marshalling: the canonical {@link Value} encoding (codec/value.ts) written
 * in plain JavaScript, so that walking a contract's arguments and results happens inside the
 * metered sandbox and the host only ever sees one byte string, which it decodes strictly.
 *
 * Intrinsics the prelude relies on are captured before contract code runs; a contract that
 * tampers with prototypes can only confuse its own call, because every call gets a fresh sandbox.
 */

/** Names of the bridge functions the host installs on the sandbox global before the prelude runs. */
export const BRIDGE_NAMES = ['__lc_get', '__lc_set', '__lc_del', '__lc_emit', '__lc_call', '__lc_ctx'] as const

/**
 * The prelude script. Its completion value is an object `{ invoke, describe }`: `invoke(fn, argsBuf)`
 * decodes the arguments, calls `fn`, and returns the encoded result as an ArrayBuffer;
 * `describe(e)` classifies a thrown value as `[failureCode, message]`.
 */
export const PRELUDE = `(function (g) {
  'use strict';
  const bridge = { get: g.__lc_get, set: g.__lc_set, del: g.__lc_del, emit: g.__lc_emit, call: g.__lc_call, ctx: g.__lc_ctx };
  for (const name of ['__lc_get', '__lc_set', '__lc_del', '__lc_emit', '__lc_call', '__lc_ctx']) delete g[name];

  const U8 = Uint8Array, AB = ArrayBuffer, TypeErr = TypeError, RangeErr = RangeError, Err = Error, BigIntC = BigInt, StringC = String;
  const apply = Reflect.apply, isArray = Array.isArray, keys = Object.keys, getProto = Object.getPrototypeOf;
  const create = Object.create, defineProperty = Object.defineProperty, freeze = Object.freeze, ObjectProto = Object.prototype;
  const sort = Array.prototype.sort, fromCharCode = String.fromCharCode;
  const TypedArrayProto = getProto(U8.prototype);
  const getter = (o, k) => Object.getOwnPropertyDescriptor(o, k).get;
  const taBuffer = getter(TypedArrayProto, 'buffer'), taOffset = getter(TypedArrayProto, 'byteOffset'), taLength = getter(TypedArrayProto, 'byteLength');
  const abSlice = AB.prototype.slice;

  // --- bytes ---------------------------------------------------------------------------------
  function isBytes(v) { return v instanceof U8; }
  function bytesToBuffer(v, what) {
    if (!isBytes(v)) throw new TypeErr(what + ' must be a Uint8Array');
    const off = apply(taOffset, v, []);
    return apply(abSlice, apply(taBuffer, v, []), [off, off + apply(taLength, v, [])]);
  }

  // --- writer --------------------------------------------------------------------------------
  // Hot paths call methods directly: a contract that replaces a built-in it can reach only changes
  // what its own call encodes, and the host decodes strictly.
  const taSet = TypedArrayProto.set, taSubarray = TypedArrayProto.subarray;
  let buf = null, pos = 0;
  function ensure(n) {
    if (pos + n <= buf.length) return;
    let cap = buf.length * 2;
    while (cap < pos + n) cap *= 2;
    const next = new U8(cap);
    apply(taSet, next, [apply(taSubarray, buf, [0, pos]), 0]);
    buf = next;
  }
  function uvarint(n) { ensure(8); while (n >= 0x80) { buf[pos++] = (n % 0x80) | 0x80; n = (n - (n % 0x80)) / 0x80; } buf[pos++] = n; }
  // UTF-8 of s into a fresh array; lone surrogates have no encoding.
  function utf8(s) {
    const n = s.length, out = new U8(n * 3);
    let o = 0;
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) { out[o++] = c; continue; }
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = c <= 0xdbff && i + 1 < n ? s.charCodeAt(i + 1) : 0;
        if (!(d >= 0xdc00 && d <= 0xdfff)) throw new TypeErr('string has a lone surrogate');
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00); i++;
        out[o++] = 0xf0 | (c >> 18); out[o++] = 0x80 | ((c >> 12) & 63); out[o++] = 0x80 | ((c >> 6) & 63); out[o++] = 0x80 | (c & 63);
      } else if (c < 0x800) { out[o++] = 0xc0 | (c >> 6); out[o++] = 0x80 | (c & 63); }
      else { out[o++] = 0xe0 | (c >> 12); out[o++] = 0x80 | ((c >> 6) & 63); out[o++] = 0x80 | (c & 63); }
    }
    return apply(taSubarray, out, [0, o]);
  }
  function raw(b) { const n = apply(taLength, b, []); ensure(n); apply(taSet, buf, [b, pos]); pos += n; }
  function compareBytes(a, b) {
    const n = a.length < b.length ? a.length : b.length;
    for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
    return a.length - b.length;
  }
  function magnitude(m) {
    const out = [];
    while (m > 0n) { out[out.length] = Number(m & 255n); m >>= 8n; }
    if (out.length > 32) throw new RangeErr('integer does not fit in 256 bits');
    ensure(out.length + 1);
    buf[pos++] = out.length;
    for (let i = out.length - 1; i >= 0; i--) buf[pos++] = out[i];
  }
  const LIMIT = 1048576;
  function write(v, depth) {
    if (depth > 32) throw new RangeErr('value nested deeper than 32');
    ensure(1);
    if (v === null) { buf[pos++] = 0; return; }
    const t = typeof v;
    if (t === 'boolean') { buf[pos++] = v ? 2 : 1; return; }
    if (t === 'bigint') { if (v >= 0n) { buf[pos++] = 3; magnitude(v); } else { buf[pos++] = 4; magnitude(-v - 1n); } return; }
    if (t === 'string') { const b = utf8(v); if (b.length > LIMIT) throw new RangeErr('string longer than 1 MiB'); buf[pos++] = 6; uvarint(b.length); raw(b); return; }
    if (t === 'object') {
      if (isBytes(v)) { const n = apply(taLength, v, []); if (n > LIMIT) throw new RangeErr('byte string longer than 1 MiB'); buf[pos++] = 5; uvarint(n); raw(v); return; }
      if (isArray(v)) { const n = v.length; buf[pos++] = 7; uvarint(n); for (let i = 0; i < n; i++) write(v[i], depth + 1); return; }
      const proto = getProto(v);
      if (proto === ObjectProto || proto === null) {
        const ks = keys(v), n = ks.length, entries = [];
        for (let i = 0; i < n; i++) entries[i] = [utf8(ks[i]), ks[i]];
        if (n > 1) apply(sort, entries, [(a, b) => compareBytes(a[0], b[0])]);
        buf[pos++] = 8; uvarint(n);
        for (let i = 0; i < n; i++) { const k = entries[i][0]; uvarint(k.length); raw(k); write(v[entries[i][1]], depth + 1); }
        return;
      }
    }
    throw new TypeErr('not a Value: ' + (t === 'number' ? 'number (use a bigint)' : t === 'object' ? 'object of another kind' : t));
  }
  // Re-entrant: a getter met while encoding may itself emit an event or call the host.
  function encode(v) {
    const outerBuf = buf, outerPos = pos;
    buf = new U8(256); pos = 0;
    try {
      write(v, 0);
      return apply(abSlice, apply(taBuffer, buf, []), [0, pos]);
    } finally { buf = outerBuf; pos = outerPos; }
  }

  // --- reader (input comes from the host's strict encoder, so it is canonical) -----------------
  let rb = null, rab = null, rp = 0;
  function ru8() { if (rp >= rb.length) throw new RangeErr('truncated value'); return rb[rp++]; }
  function ruvarint() { let v = 0, scale = 1; for (;;) { const b = ru8(); v += (b & 0x7f) * scale; if ((b & 0x80) === 0) return v; scale *= 0x80; } }
  function rmag() { const n = ru8(); let m = 0n; for (let i = 0; i < n; i++) m = (m << 8n) | BigIntC(ru8()); return m; }
  function rstring(n) {
    const end = rp + n;
    if (end > rb.length) throw new RangeErr('truncated value');
    const codes = [];
    while (rp < end) {
      const a = rb[rp++];
      let c;
      if (a < 0x80) c = a;
      else if (a < 0xe0) c = ((a & 31) << 6) | (rb[rp++] & 63);
      else if (a < 0xf0) { const b = rb[rp++]; c = ((a & 15) << 12) | ((b & 63) << 6) | (rb[rp++] & 63); }
      else { const b = rb[rp++], d = rb[rp++]; c = ((a & 7) << 18) | ((b & 63) << 12) | ((d & 63) << 6) | (rb[rp++] & 63); }
      if (c >= 0x10000) { c -= 0x10000; codes[codes.length] = 0xd800 + (c >> 10); codes[codes.length] = 0xdc00 + (c & 1023); } else codes[codes.length] = c;
    }
    let s = '';
    for (let i = 0; i < codes.length; i += 4096) s += apply(fromCharCode, null, apply(arraySlice, codes, [i, i + 4096]));
    return s;
  }
  const arraySlice = Array.prototype.slice;
  function read() {
    const tag = ru8();
    switch (tag) {
      case 0: return null;
      case 1: return false;
      case 2: return true;
      case 3: return rmag();
      case 4: return -rmag() - 1n;
      case 5: { const n = ruvarint(); if (rp + n > rb.length) throw new RangeErr('truncated value'); const out = new U8(apply(abSlice, rab, [rp, rp + n])); rp += n; return out; }
      case 6: return rstring(ruvarint());
      case 7: { const n = ruvarint(); const out = []; for (let i = 0; i < n; i++) defineProperty(out, i, { value: read(), writable: true, enumerable: true, configurable: true }); return out; }
      case 8: {
        const n = ruvarint(); const out = create(null);
        for (let i = 0; i < n; i++) { const k = rstring(ruvarint()); defineProperty(out, k, { value: read(), writable: true, enumerable: true, configurable: true }); }
        return out;
      }
      default: throw new RangeErr('bad value tag ' + tag);
    }
  }
  function decode(ab) { rab = ab; rb = new U8(ab); rp = 0; const v = read(); rb = null; rab = null; return v; }

  // --- the contract-facing API -----------------------------------------------------------------
  function text(v, what) { if (typeof v !== 'string') throw new TypeErr(what + ' must be a string'); return v; }
  const storage = freeze({
    get(key) { const r = bridge.get(bytesToBuffer(key, 'key')); return r === undefined ? null : new U8(r); },
    set(key, value) { bridge.set(bytesToBuffer(key, 'key'), bytesToBuffer(value, 'value')); },
    delete(key) { bridge.del(bytesToBuffer(key, 'key')); },
  });
  const api = freeze({
    storage,
    emit(event, data) { bridge.emit(text(event, 'event'), encode(data === undefined ? null : data)); },
    call(target, method, args) { return decode(bridge.call(bytesToBuffer(target, 'target'), text(method, 'method'), encode(args === undefined ? null : args))); },
    context(name) { return decode(bridge.ctx(text(name, 'name'))); },
  });
  defineProperty(g, 'loopchain', { value: api, writable: false, enumerable: false, configurable: false });

  // --- determinism and isolation ---------------------------------------------------------------
  // Nothing here can reach the host anyway (the sandbox is WebAssembly); these go because their
  // results could depend on the machine, on timing or on collection, or because dynamic code
  // would defeat review of what was deployed.
  for (const name of ['eval', 'Date', 'performance', 'WeakRef', 'FinalizationRegistry', 'SharedArrayBuffer', 'Atomics', 'queueMicrotask',
    'Float16Array', 'Float32Array', 'Float64Array']) delete g[name];
  delete Math.random;
  // NaN bit patterns from float narrowing are not fixed by WebAssembly; raw float views are out.
  for (const m of ['getFloat16', 'setFloat16', 'getFloat32', 'setFloat32', 'getFloat64', 'setFloat64']) delete DataView.prototype[m];
  const noDynamicCode = function Function() { throw new TypeErr('dynamic code is disabled'); };
  const fnProtos = [
    Function.prototype,
    getProto(async function () {}),
    getProto(function* () {}),
    getProto(async function* () {}),
  ];
  for (const p of fnProtos) defineProperty(p, 'constructor', { value: noDynamicCode, writable: false, enumerable: false, configurable: false });
  defineProperty(noDynamicCode, 'prototype', { value: Function.prototype, writable: false, enumerable: false, configurable: false });
  defineProperty(g, 'Function', { value: noDynamicCode, writable: true, enumerable: false, configurable: true });

  const InternalErr = g.InternalError;
  // Classifies a thrown value as [kind, message]; kind picks the failure code on the host.
  function describe(e) {
    if (InternalErr !== undefined && e instanceof InternalErr && e.message === 'out of memory') return ['OUT_OF_MEMORY', 'out of memory'];
    if (e instanceof RangeErr && e.message === 'Maximum call stack size exceeded') return ['STACK_OVERFLOW', e.message];
    if (e instanceof Err) return ['CONTRACT_ERROR', StringC(e.message)];
    return ['CONTRACT_ERROR', StringC(e)];
  }
  return freeze({ invoke(fn, argsBuf) { const r = fn(decode(argsBuf)); return encode(r === undefined ? null : r); }, describe });
})(globalThis)`
