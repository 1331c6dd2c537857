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
 * The prelude script. Its completion value is an object `{ invoke, describe, inspect, resolve }`: `invoke(fn, argsBuf)`
 * decodes the arguments, calls `fn`, and returns the encoded result as an ArrayBuffer;
 * `describe(e)` classifies a thrown value as `[failureCode, message]`; `inspect(ns, name)` lists
 * the module's exports by kind and returns export `name` when it is data (a SCORE's manifest). It
 * also holds the SCORE SDK (VarDB, DictDB, ArrayDB, msg, block, tx, self) so that it is compiled
 * once into the base image, costs a contract nothing to load, and runs metered like contract code.
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
  // --- the SCORE SDK: typed storage containers, context, calls ----------------------------------
  // Key layout (docs/writing-a-score.md): kind byte (1 VarDB, 2 DictDB, 3 ArrayDB) ‖ uvarint byte
  // length of the UTF-8 name ‖ name ‖ zero or more sub-keys, each in the canonical Value encoding.
  // Every part is self-delimiting, so a key parses one way only and two containers never share one.
  const reTest = RegExp.prototype.test, ADDRESS_RE = /^(hx|cx)[0-9a-f]{40}$/;
  function isAddress(v) { return typeof v === 'string' && v.length === 42 && apply(reTest, ADDRESS_RE, [v]); }
  function hexDigit(c) { return c <= 57 ? c - 48 : c - 87; }
  // The 21-byte form the host takes for a call target: type byte (0 account, 1 contract) ‖ 20 bytes.
  function addressBuffer(a) {
    if (!isAddress(a)) throw new TypeErr('target must be an address (hx… or cx…)');
    const out = new U8(21);
    out[0] = a.charCodeAt(0) === 99 ? 1 : 0;
    for (let i = 0; i < 20; i++) out[i + 1] = hexDigit(a.charCodeAt(2 + 2 * i)) * 16 + hexDigit(a.charCodeAt(3 + 2 * i));
    return apply(taBuffer, out, []);
  }
  const VALUE_TYPES = freeze({ int: 1, str: 1, bytes: 1, bool: 1, Address: 1, any: 1 });
  function valueType(type) {
    if (type === undefined) return 'any';
    if (typeof type !== 'string' || VALUE_TYPES[type] !== 1) throw new TypeErr('unknown value type ' + StringC(type) + ' (int, str, bytes, bool, Address, any)');
    return type;
  }
  function checkType(type, v, what) {
    switch (type) {
      case 'int': if (typeof v === 'bigint') return; break;
      case 'str': if (typeof v === 'string') return; break;
      case 'bytes': if (isBytes(v)) return; break;
      case 'bool': if (typeof v === 'boolean') return; break;
      case 'Address': if (isAddress(v)) return; break;
      default: if (v !== undefined) return;
    }
    throw new TypeErr(what + ' must be ' + (type === 'any' ? 'a Value' : type === 'int' ? 'an int (bigint)' : 'a ' + type));
  }
  // What a missing slot reads as (as in ICON): 0n, '', false, or null for bytes, Address and any.
  function defaultOf(type) { return type === 'int' ? 0n : type === 'str' ? '' : type === 'bool' ? false : null; }
  function concat(a, b) { const out = new U8(a.length + b.length); apply(taSet, out, [a, 0]); apply(taSet, out, [b, a.length]); return out; }
  function header(kind, name) {
    const n = utf8(text(name, 'a storage name'));
    if (n.length === 0) throw new TypeErr('a storage name must not be empty');
    const len = [];
    let x = n.length;
    while (x >= 0x80) { len[len.length] = (x % 0x80) | 0x80; x = (x - (x % 0x80)) / 0x80; }
    len[len.length] = x;
    const out = new U8(1 + len.length + n.length);
    out[0] = kind;
    for (let i = 0; i < len.length; i++) out[1 + i] = len[i];
    apply(taSet, out, [n, 1 + len.length]);
    return out;
  }
  function subKey(k) {
    const t = typeof k;
    if (t !== 'string' && t !== 'bigint' && t !== 'boolean' && !isBytes(k)) throw new TypeErr('a key must be a string, Address, bigint, boolean or Uint8Array');
    return new U8(encode(k));
  }
  function readSlot(key, type) { const r = bridge.get(key); return r === undefined ? defaultOf(type) : decode(r); }
  // Writing the default value removes the slot: it reads back the same and the state stays small.
  function writeSlot(key, type, v) {
    if (v === defaultOf(type)) bridge.del(key); else bridge.set(key, encode(v));
  }
  function bufferOf(u8) { return apply(taBuffer, u8, []); }
  const SUB = freeze(create(null));

  class VarDB {
    #key; #type;
    /** A single value named \`name\`, of value type \`type\` (default 'any'). */
    constructor(name, type) { this.#type = valueType(type); this.#key = bufferOf(header(1, name)); }
    get() { return readSlot(this.#key, this.#type); }
    set(v) { checkType(this.#type, v, 'value'); writeSlot(this.#key, this.#type, v); }
    remove() { bridge.del(this.#key); }
  }

  class DictDB {
    #prefix; #type; #depth;
    /** A map named \`name\` from keys to values of \`type\`; with depth > 1, at(k) gives the next level. */
    constructor(name, type, depth, prefix) {
      if (depth === undefined) depth = 1;
      if (typeof depth !== 'number' || depth % 1 !== 0 || depth < 1 || depth > 8) throw new RangeErr('depth must be an integer from 1 to 8');
      this.#type = valueType(type);
      this.#depth = depth;
      this.#prefix = name === SUB ? prefix : header(2, name);
    }
    at(k) {
      if (this.#depth < 2) throw new TypeErr('at() is for the outer levels of a nested DictDB; use get/set/remove on the last level');
      return new DictDB(SUB, this.#type, this.#depth - 1, concat(this.#prefix, subKey(k)));
    }
    #leaf(k) {
      if (this.#depth !== 1) throw new TypeErr('this DictDB has ' + this.#depth + ' more levels: use at(key) first');
      return bufferOf(concat(this.#prefix, subKey(k)));
    }
    get(k) { return readSlot(this.#leaf(k), this.#type); }
    has(k) { return bridge.get(this.#leaf(k)) !== undefined; }
    set(k, v) { const key = this.#leaf(k); checkType(this.#type, v, 'value'); writeSlot(key, this.#type, v); }
    remove(k) { bridge.del(this.#leaf(k)); }
  }

  class ArrayDB {
    #base; #type;
    /** A list named \`name\` of values of \`type\`: length under the bare key, item i under key ‖ Value(i). */
    constructor(name, type) { this.#type = valueType(type); this.#base = header(3, name); }
    get length() { const r = bridge.get(bufferOf(this.#base)); return r === undefined ? 0 : Number(decode(r)); }
    #slot(i) { return bufferOf(concat(this.#base, new U8(encode(BigIntC(i))))); }
    #index(i) {
      const n = this.length;
      const j = typeof i === 'bigint' ? i : typeof i === 'number' && i % 1 === 0 ? BigIntC(i) : null;
      if (j === null || j < 0n || j >= BigIntC(n)) throw new RangeErr('index ' + StringC(i) + ' is out of range (length ' + n + ')');
      return Number(j);
    }
    get(i) { return readSlot(this.#slot(this.#index(i)), this.#type); }
    set(i, v) { const j = this.#index(i); checkType(this.#type, v, 'value'); writeSlot(this.#slot(j), this.#type, v); }
    push(v) {
      checkType(this.#type, v, 'value');
      const n = this.length;
      writeSlot(this.#slot(n), this.#type, v);
      bridge.set(bufferOf(this.#base), encode(BigIntC(n + 1)));
    }
    pop() {
      const n = this.length;
      if (n === 0) throw new RangeErr('pop from an empty ArrayDB');
      const slot = this.#slot(n - 1), v = readSlot(slot, this.#type);
      bridge.del(slot);
      if (n === 1) bridge.del(bufferOf(this.#base)); else bridge.set(bufferOf(this.#base), encode(BigIntC(n - 1)));
      return v;
    }
    *[Symbol.iterator]() { const n = this.length; for (let i = 0; i < n; i++) yield this.get(i); }
  }
  for (const C of [VarDB, DictDB, ArrayDB]) { freeze(C.prototype); freeze(C); }

  function ctxValue(name) { return decode(bridge.ctx(name)); }
  const msg = freeze({ get sender() { return ctxValue('sender'); }, get value() { return ctxValue('value'); } });
  const block = freeze({ get height() { return ctxValue('height'); }, get timestamp() { return ctxValue('timestamp'); } });
  const tx = freeze({ get hash() { return ctxValue('txHash'); }, get origin() { return ctxValue('origin'); } });
  const self = freeze({ get address() { return ctxValue('address'); } });

  const storage = freeze({
    get(key) { const r = bridge.get(bytesToBuffer(key, 'key')); return r === undefined ? null : new U8(r); },
    set(key, value) { bridge.set(bytesToBuffer(key, 'key'), bytesToBuffer(value, 'value')); },
    delete(key) { bridge.del(bytesToBuffer(key, 'key')); },
  });
  const api = freeze({
    storage,
    emit(event, data) { bridge.emit(text(event, 'event'), encode(data === undefined ? null : data)); },
    call(target, method, args) {
      const t = typeof target === 'string' ? addressBuffer(target) : bytesToBuffer(target, 'target');
      return decode(bridge.call(t, text(method, 'method'), encode(args === undefined ? null : args)));
    },
    context(name) { return decode(bridge.ctx(text(name, 'name'))); },
    VarDB, DictDB, ArrayDB, msg, block, tx, self,
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
  // A SCORE is a module of exported functions with an exported manifest, or a default-exported
  // class with a static manifest whose methods are the external methods (a fresh instance per call).
  const ownNames = Object.getOwnPropertyNames;
  function scoreClass(ns) {
    const C = ns.default;
    return typeof C === 'function' && ns.manifest === undefined && C.manifest !== undefined ? C : undefined;
  }
  // The function that serves method \`name\`, or undefined.
  function resolve(ns, name) {
    const C = scoreClass(ns);
    if (C === undefined) return ns[name];
    const m = name === 'constructor' ? undefined : C.prototype[name];
    if (typeof m !== 'function') return undefined;
    return function (args) { return apply(m, new C(), [args]); };
  }
  // Lists the SCORE's members by kind, with the value of \`name\` when it is data (the manifest).
  function inspect(ns, name) {
    const kinds = create(null), C = scoreClass(ns);
    if (C === undefined) {
      const ks = keys(ns);
      for (let i = 0; i < ks.length; i++) kinds[ks[i]] = typeof ns[ks[i]];
    } else {
      const ks = ownNames(C.prototype);
      for (let i = 0; i < ks.length; i++) if (ks[i] !== 'constructor') kinds[ks[i]] = typeof C.prototype[ks[i]];
      kinds.manifest = 'object';
    }
    const v = C === undefined ? ns[name] : name === 'manifest' ? C.manifest : undefined;
    return encode({ kinds, value: typeof v === 'function' || v === undefined ? null : v });
  }
  return freeze({ invoke(fn, argsBuf) { const r = fn(decode(argsBuf)); return encode(r === undefined ? null : r); }, describe, inspect, resolve });
})(globalThis)`
