// roomhub-client: built from clients/js by `npm run build` (esbuild); do not edit.
var __defProp = Object.defineProperty;
var __defNormalProp = (obj, key, value) => key in obj ? __defProp(obj, key, { enumerable: true, configurable: true, writable: true, value }) : obj[key] = value;
var __publicField = (obj, key, value) => __defNormalProp(obj, typeof key !== "symbol" ? key + "" : key, value);

// node_modules/@msgpack/msgpack/dist.esm/utils/utf8.mjs
function utf8Count(str) {
  const strLength = str.length;
  let byteLength = 0;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      byteLength++;
      continue;
    } else if ((value & 4294965248) === 0) {
      byteLength += 2;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        byteLength += 3;
      } else {
        byteLength += 4;
      }
    }
  }
  return byteLength;
}
function utf8EncodeJs(str, output, outputOffset) {
  const strLength = str.length;
  let offset = outputOffset;
  let pos = 0;
  while (pos < strLength) {
    let value = str.charCodeAt(pos++);
    if ((value & 4294967168) === 0) {
      output[offset++] = value;
      continue;
    } else if ((value & 4294965248) === 0) {
      output[offset++] = value >> 6 & 31 | 192;
    } else {
      if (value >= 55296 && value <= 56319) {
        if (pos < strLength) {
          const extra = str.charCodeAt(pos);
          if ((extra & 64512) === 56320) {
            ++pos;
            value = ((value & 1023) << 10) + (extra & 1023) + 65536;
          }
        }
      }
      if ((value & 4294901760) === 0) {
        output[offset++] = value >> 12 & 15 | 224;
        output[offset++] = value >> 6 & 63 | 128;
      } else {
        output[offset++] = value >> 18 & 7 | 240;
        output[offset++] = value >> 12 & 63 | 128;
        output[offset++] = value >> 6 & 63 | 128;
      }
    }
    output[offset++] = value & 63 | 128;
  }
}
var sharedTextEncoder = new TextEncoder();
var TEXT_ENCODER_THRESHOLD = 50;
function utf8EncodeTE(str, output, outputOffset) {
  sharedTextEncoder.encodeInto(str, output.subarray(outputOffset));
}
function utf8Encode(str, output, outputOffset) {
  if (str.length > TEXT_ENCODER_THRESHOLD) {
    utf8EncodeTE(str, output, outputOffset);
  } else {
    utf8EncodeJs(str, output, outputOffset);
  }
}
var CHUNK_SIZE = 4096;
function utf8DecodeJs(bytes, inputOffset, byteLength) {
  let offset = inputOffset;
  const end = offset + byteLength;
  const units = [];
  let result = "";
  while (offset < end) {
    const byte1 = bytes[offset++];
    if ((byte1 & 128) === 0) {
      units.push(byte1);
    } else if ((byte1 & 224) === 192) {
      const byte2 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 6 | byte2);
    } else if ((byte1 & 240) === 224) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      units.push((byte1 & 31) << 12 | byte2 << 6 | byte3);
    } else if ((byte1 & 248) === 240) {
      const byte2 = bytes[offset++] & 63;
      const byte3 = bytes[offset++] & 63;
      const byte4 = bytes[offset++] & 63;
      let unit = (byte1 & 7) << 18 | byte2 << 12 | byte3 << 6 | byte4;
      if (unit > 65535) {
        unit -= 65536;
        units.push(unit >>> 10 & 1023 | 55296);
        unit = 56320 | unit & 1023;
      }
      units.push(unit);
    } else {
      units.push(byte1);
    }
    if (units.length >= CHUNK_SIZE) {
      result += String.fromCharCode(...units);
      units.length = 0;
    }
  }
  if (units.length > 0) {
    result += String.fromCharCode(...units);
  }
  return result;
}
var sharedTextDecoder = new TextDecoder();
var TEXT_DECODER_THRESHOLD = 200;
function utf8DecodeTD(bytes, inputOffset, byteLength) {
  const stringBytes = bytes.subarray(inputOffset, inputOffset + byteLength);
  return sharedTextDecoder.decode(stringBytes);
}
function utf8Decode(bytes, inputOffset, byteLength) {
  if (byteLength > TEXT_DECODER_THRESHOLD) {
    return utf8DecodeTD(bytes, inputOffset, byteLength);
  } else {
    return utf8DecodeJs(bytes, inputOffset, byteLength);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/ExtData.mjs
var ExtData = class {
  constructor(type, data) {
    __publicField(this, "type");
    __publicField(this, "data");
    this.type = type;
    this.data = data;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/DecodeError.mjs
var DecodeError = class _DecodeError extends Error {
  constructor(message) {
    super(message);
    const proto = Object.create(_DecodeError.prototype);
    Object.setPrototypeOf(this, proto);
    Object.defineProperty(this, "name", {
      configurable: true,
      enumerable: false,
      value: _DecodeError.name
    });
  }
};

// node_modules/@msgpack/msgpack/dist.esm/utils/int.mjs
var UINT32_MAX = 4294967295;
function setUint64(view, offset, value) {
  const high = value / 4294967296;
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function setInt64(view, offset, value) {
  const high = Math.floor(value / 4294967296);
  const low = value;
  view.setUint32(offset, high);
  view.setUint32(offset + 4, low);
}
function getInt64(view, offset) {
  const high = view.getInt32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}
function getUint64(view, offset) {
  const high = view.getUint32(offset);
  const low = view.getUint32(offset + 4);
  return high * 4294967296 + low;
}

// node_modules/@msgpack/msgpack/dist.esm/timestamp.mjs
var EXT_TIMESTAMP = -1;
var TIMESTAMP32_MAX_SEC = 4294967296 - 1;
var TIMESTAMP64_MAX_SEC = 17179869184 - 1;
function encodeTimeSpecToTimestamp({ sec, nsec }) {
  if (sec >= 0 && nsec >= 0 && sec <= TIMESTAMP64_MAX_SEC) {
    if (nsec === 0 && sec <= TIMESTAMP32_MAX_SEC) {
      const rv = new Uint8Array(4);
      const view = new DataView(rv.buffer);
      view.setUint32(0, sec);
      return rv;
    } else {
      const secHigh = sec / 4294967296;
      const secLow = sec & 4294967295;
      const rv = new Uint8Array(8);
      const view = new DataView(rv.buffer);
      view.setUint32(0, nsec << 2 | secHigh & 3);
      view.setUint32(4, secLow);
      return rv;
    }
  } else {
    const rv = new Uint8Array(12);
    const view = new DataView(rv.buffer);
    view.setUint32(0, nsec);
    setInt64(view, 4, sec);
    return rv;
  }
}
function encodeDateToTimeSpec(date) {
  const msec = date.getTime();
  const sec = Math.floor(msec / 1e3);
  const nsec = (msec - sec * 1e3) * 1e6;
  const nsecInSec = Math.floor(nsec / 1e9);
  return {
    sec: sec + nsecInSec,
    nsec: nsec - nsecInSec * 1e9
  };
}
function encodeTimestampExtension(object) {
  if (object instanceof Date) {
    const timeSpec = encodeDateToTimeSpec(object);
    return encodeTimeSpecToTimestamp(timeSpec);
  } else {
    return null;
  }
}
function decodeTimestampToTimeSpec(data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4: {
      const sec = view.getUint32(0);
      const nsec = 0;
      return { sec, nsec };
    }
    case 8: {
      const nsec30AndSecHigh2 = view.getUint32(0);
      const secLow32 = view.getUint32(4);
      const sec = (nsec30AndSecHigh2 & 3) * 4294967296 + secLow32;
      const nsec = nsec30AndSecHigh2 >>> 2;
      return { sec, nsec };
    }
    case 12: {
      const sec = getInt64(view, 4);
      const nsec = view.getUint32(0);
      return { sec, nsec };
    }
    default:
      throw new DecodeError(`Unrecognized data size for timestamp (expected 4, 8, or 12): ${data.length}`);
  }
}
function decodeTimestampExtension(data) {
  const timeSpec = decodeTimestampToTimeSpec(data);
  return new Date(timeSpec.sec * 1e3 + timeSpec.nsec / 1e6);
}
var timestampExtension = {
  type: EXT_TIMESTAMP,
  encode: encodeTimestampExtension,
  decode: decodeTimestampExtension
};

// node_modules/@msgpack/msgpack/dist.esm/ExtensionCodec.mjs
var _ExtensionCodec = class _ExtensionCodec {
  constructor() {
    // ensures ExtensionCodecType<X> matches ExtensionCodec<X>
    // this will make type errors a lot more clear
    // eslint-disable-next-line @typescript-eslint/naming-convention
    __publicField(this, "__brand");
    // built-in extensions
    __publicField(this, "builtInEncoders", []);
    __publicField(this, "builtInDecoders", []);
    // custom extensions
    __publicField(this, "encoders", []);
    __publicField(this, "decoders", []);
    this.register(timestampExtension);
  }
  register({ type, encode: encode2, decode: decode2 }) {
    if (type >= 0) {
      this.encoders[type] = encode2;
      this.decoders[type] = decode2;
    } else {
      const index = -1 - type;
      this.builtInEncoders[index] = encode2;
      this.builtInDecoders[index] = decode2;
    }
  }
  tryToEncode(object, context) {
    for (let i = 0; i < this.builtInEncoders.length; i++) {
      const encodeExt = this.builtInEncoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = -1 - i;
          return new ExtData(type, data);
        }
      }
    }
    for (let i = 0; i < this.encoders.length; i++) {
      const encodeExt = this.encoders[i];
      if (encodeExt != null) {
        const data = encodeExt(object, context);
        if (data != null) {
          const type = i;
          return new ExtData(type, data);
        }
      }
    }
    if (object instanceof ExtData) {
      return object;
    }
    return null;
  }
  decode(data, type, context) {
    const decodeExt = type < 0 ? this.builtInDecoders[-1 - type] : this.decoders[type];
    if (decodeExt) {
      return decodeExt(data, type, context);
    } else {
      return new ExtData(type, data);
    }
  }
};
__publicField(_ExtensionCodec, "defaultCodec", new _ExtensionCodec());
var ExtensionCodec = _ExtensionCodec;

// node_modules/@msgpack/msgpack/dist.esm/utils/typedArrays.mjs
function isArrayBufferLike(buffer) {
  return buffer instanceof ArrayBuffer || typeof SharedArrayBuffer !== "undefined" && buffer instanceof SharedArrayBuffer;
}
function ensureUint8Array(buffer) {
  if (buffer instanceof Uint8Array) {
    return buffer;
  } else if (ArrayBuffer.isView(buffer)) {
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } else if (isArrayBufferLike(buffer)) {
    return new Uint8Array(buffer);
  } else {
    return Uint8Array.from(buffer);
  }
}

// node_modules/@msgpack/msgpack/dist.esm/Encoder.mjs
var DEFAULT_MAX_DEPTH = 100;
var DEFAULT_INITIAL_BUFFER_SIZE = 2048;
var Encoder = class _Encoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "maxDepth");
    __publicField(this, "initialBufferSize");
    __publicField(this, "sortKeys");
    __publicField(this, "forceFloat32");
    __publicField(this, "ignoreUndefined");
    __publicField(this, "forceIntegerToFloat");
    __publicField(this, "pos");
    __publicField(this, "view");
    __publicField(this, "bytes");
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.maxDepth = options?.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.initialBufferSize = options?.initialBufferSize ?? DEFAULT_INITIAL_BUFFER_SIZE;
    this.sortKeys = options?.sortKeys ?? false;
    this.forceFloat32 = options?.forceFloat32 ?? false;
    this.ignoreUndefined = options?.ignoreUndefined ?? false;
    this.forceIntegerToFloat = options?.forceIntegerToFloat ?? false;
    this.pos = 0;
    this.view = new DataView(new ArrayBuffer(this.initialBufferSize));
    this.bytes = new Uint8Array(this.view.buffer);
  }
  clone() {
    return new _Encoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      maxDepth: this.maxDepth,
      initialBufferSize: this.initialBufferSize,
      sortKeys: this.sortKeys,
      forceFloat32: this.forceFloat32,
      ignoreUndefined: this.ignoreUndefined,
      forceIntegerToFloat: this.forceIntegerToFloat
    });
  }
  reinitializeState() {
    this.pos = 0;
  }
  /**
   * This is almost equivalent to {@link Encoder#encode}, but it returns an reference of the encoder's internal buffer and thus much faster than {@link Encoder#encode}.
   *
   * @returns Encodes the object and returns a shared reference the encoder's internal buffer.
   */
  encodeSharedRef(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encodeSharedRef(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.subarray(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  /**
   * @returns Encodes the object and returns a copy of the encoder's internal buffer.
   */
  encode(object) {
    if (this.entered) {
      const instance = this.clone();
      return instance.encode(object);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.doEncode(object, 1);
      return this.bytes.slice(0, this.pos);
    } finally {
      this.entered = false;
    }
  }
  doEncode(object, depth) {
    if (depth > this.maxDepth) {
      throw new Error(`Too deep objects in depth ${depth}`);
    }
    if (object == null) {
      this.encodeNil();
    } else if (typeof object === "boolean") {
      this.encodeBoolean(object);
    } else if (typeof object === "number") {
      if (!this.forceIntegerToFloat) {
        this.encodeNumber(object);
      } else {
        this.encodeNumberAsFloat(object);
      }
    } else if (typeof object === "string") {
      this.encodeString(object);
    } else if (this.useBigInt64 && typeof object === "bigint") {
      this.encodeBigInt64(object);
    } else {
      this.encodeObject(object, depth);
    }
  }
  ensureBufferSizeToWrite(sizeToWrite) {
    const requiredSize = this.pos + sizeToWrite;
    if (this.view.byteLength < requiredSize) {
      this.resizeBuffer(requiredSize * 2);
    }
  }
  resizeBuffer(newSize) {
    const newBuffer = new ArrayBuffer(newSize);
    const newBytes = new Uint8Array(newBuffer);
    const newView = new DataView(newBuffer);
    newBytes.set(this.bytes);
    this.view = newView;
    this.bytes = newBytes;
  }
  encodeNil() {
    this.writeU8(192);
  }
  encodeBoolean(object) {
    if (object === false) {
      this.writeU8(194);
    } else {
      this.writeU8(195);
    }
  }
  encodeNumber(object) {
    if (!this.forceIntegerToFloat && Number.isSafeInteger(object)) {
      if (object >= 0) {
        if (object < 128) {
          this.writeU8(object);
        } else if (object < 256) {
          this.writeU8(204);
          this.writeU8(object);
        } else if (object < 65536) {
          this.writeU8(205);
          this.writeU16(object);
        } else if (object < 4294967296) {
          this.writeU8(206);
          this.writeU32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(207);
          this.writeU64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      } else {
        if (object >= -32) {
          this.writeU8(224 | object + 32);
        } else if (object >= -128) {
          this.writeU8(208);
          this.writeI8(object);
        } else if (object >= -32768) {
          this.writeU8(209);
          this.writeI16(object);
        } else if (object >= -2147483648) {
          this.writeU8(210);
          this.writeI32(object);
        } else if (!this.useBigInt64) {
          this.writeU8(211);
          this.writeI64(object);
        } else {
          this.encodeNumberAsFloat(object);
        }
      }
    } else {
      this.encodeNumberAsFloat(object);
    }
  }
  encodeNumberAsFloat(object) {
    if (this.forceFloat32) {
      this.writeU8(202);
      this.writeF32(object);
    } else {
      this.writeU8(203);
      this.writeF64(object);
    }
  }
  encodeBigInt64(object) {
    if (object >= BigInt(0)) {
      this.writeU8(207);
      this.writeBigUint64(object);
    } else {
      this.writeU8(211);
      this.writeBigInt64(object);
    }
  }
  writeStringHeader(byteLength) {
    if (byteLength < 32) {
      this.writeU8(160 + byteLength);
    } else if (byteLength < 256) {
      this.writeU8(217);
      this.writeU8(byteLength);
    } else if (byteLength < 65536) {
      this.writeU8(218);
      this.writeU16(byteLength);
    } else if (byteLength < 4294967296) {
      this.writeU8(219);
      this.writeU32(byteLength);
    } else {
      throw new Error(`Too long string: ${byteLength} bytes in UTF-8`);
    }
  }
  encodeString(object) {
    const maxHeaderSize = 1 + 4;
    const byteLength = utf8Count(object);
    this.ensureBufferSizeToWrite(maxHeaderSize + byteLength);
    this.writeStringHeader(byteLength);
    utf8Encode(object, this.bytes, this.pos);
    this.pos += byteLength;
  }
  encodeObject(object, depth) {
    const ext = this.extensionCodec.tryToEncode(object, this.context);
    if (ext != null) {
      this.encodeExtension(ext);
    } else if (Array.isArray(object)) {
      this.encodeArray(object, depth);
    } else if (ArrayBuffer.isView(object)) {
      this.encodeBinary(object);
    } else if (typeof object === "object") {
      this.encodeMap(object, depth);
    } else {
      throw new Error(`Unrecognized object: ${Object.prototype.toString.apply(object)}`);
    }
  }
  encodeBinary(object) {
    const size = object.byteLength;
    if (size < 256) {
      this.writeU8(196);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(197);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(198);
      this.writeU32(size);
    } else {
      throw new Error(`Too large binary: ${size}`);
    }
    const bytes = ensureUint8Array(object);
    this.writeU8a(bytes);
  }
  encodeArray(object, depth) {
    const size = object.length;
    if (size < 16) {
      this.writeU8(144 + size);
    } else if (size < 65536) {
      this.writeU8(220);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(221);
      this.writeU32(size);
    } else {
      throw new Error(`Too large array: ${size}`);
    }
    for (const item of object) {
      this.doEncode(item, depth + 1);
    }
  }
  countWithoutUndefined(object, keys) {
    let count = 0;
    for (const key of keys) {
      if (object[key] !== void 0) {
        count++;
      }
    }
    return count;
  }
  encodeMap(object, depth) {
    const keys = Object.keys(object);
    if (this.sortKeys) {
      keys.sort();
    }
    const size = this.ignoreUndefined ? this.countWithoutUndefined(object, keys) : keys.length;
    if (size < 16) {
      this.writeU8(128 + size);
    } else if (size < 65536) {
      this.writeU8(222);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(223);
      this.writeU32(size);
    } else {
      throw new Error(`Too large map object: ${size}`);
    }
    for (const key of keys) {
      const value = object[key];
      if (!(this.ignoreUndefined && value === void 0)) {
        this.encodeString(key);
        this.doEncode(value, depth + 1);
      }
    }
  }
  encodeExtension(ext) {
    if (typeof ext.data === "function") {
      const data = ext.data(this.pos + 6);
      const size2 = data.length;
      if (size2 >= 4294967296) {
        throw new Error(`Too large extension object: ${size2}`);
      }
      this.writeU8(201);
      this.writeU32(size2);
      this.writeI8(ext.type);
      this.writeU8a(data);
      return;
    }
    const size = ext.data.length;
    if (size === 1) {
      this.writeU8(212);
    } else if (size === 2) {
      this.writeU8(213);
    } else if (size === 4) {
      this.writeU8(214);
    } else if (size === 8) {
      this.writeU8(215);
    } else if (size === 16) {
      this.writeU8(216);
    } else if (size < 256) {
      this.writeU8(199);
      this.writeU8(size);
    } else if (size < 65536) {
      this.writeU8(200);
      this.writeU16(size);
    } else if (size < 4294967296) {
      this.writeU8(201);
      this.writeU32(size);
    } else {
      throw new Error(`Too large extension object: ${size}`);
    }
    this.writeI8(ext.type);
    this.writeU8a(ext.data);
  }
  writeU8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setUint8(this.pos, value);
    this.pos++;
  }
  writeU8a(values) {
    const size = values.length;
    this.ensureBufferSizeToWrite(size);
    this.bytes.set(values, this.pos);
    this.pos += size;
  }
  writeI8(value) {
    this.ensureBufferSizeToWrite(1);
    this.view.setInt8(this.pos, value);
    this.pos++;
  }
  writeU16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setUint16(this.pos, value);
    this.pos += 2;
  }
  writeI16(value) {
    this.ensureBufferSizeToWrite(2);
    this.view.setInt16(this.pos, value);
    this.pos += 2;
  }
  writeU32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setUint32(this.pos, value);
    this.pos += 4;
  }
  writeI32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setInt32(this.pos, value);
    this.pos += 4;
  }
  writeF32(value) {
    this.ensureBufferSizeToWrite(4);
    this.view.setFloat32(this.pos, value);
    this.pos += 4;
  }
  writeF64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setFloat64(this.pos, value);
    this.pos += 8;
  }
  writeU64(value) {
    this.ensureBufferSizeToWrite(8);
    setUint64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeI64(value) {
    this.ensureBufferSizeToWrite(8);
    setInt64(this.view, this.pos, value);
    this.pos += 8;
  }
  writeBigUint64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigUint64(this.pos, value);
    this.pos += 8;
  }
  writeBigInt64(value) {
    this.ensureBufferSizeToWrite(8);
    this.view.setBigInt64(this.pos, value);
    this.pos += 8;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/encode.mjs
function encode(value, options) {
  const encoder = new Encoder(options);
  return encoder.encodeSharedRef(value);
}

// node_modules/@msgpack/msgpack/dist.esm/utils/prettyByte.mjs
function prettyByte(byte) {
  return `${byte < 0 ? "-" : ""}0x${Math.abs(byte).toString(16).padStart(2, "0")}`;
}

// node_modules/@msgpack/msgpack/dist.esm/CachedKeyDecoder.mjs
var DEFAULT_MAX_KEY_LENGTH = 16;
var DEFAULT_MAX_LENGTH_PER_KEY = 16;
var CachedKeyDecoder = class {
  constructor(maxKeyLength = DEFAULT_MAX_KEY_LENGTH, maxLengthPerKey = DEFAULT_MAX_LENGTH_PER_KEY) {
    __publicField(this, "hit", 0);
    __publicField(this, "miss", 0);
    __publicField(this, "caches");
    __publicField(this, "maxKeyLength");
    __publicField(this, "maxLengthPerKey");
    this.maxKeyLength = maxKeyLength;
    this.maxLengthPerKey = maxLengthPerKey;
    this.caches = [];
    for (let i = 0; i < this.maxKeyLength; i++) {
      this.caches.push([]);
    }
  }
  canBeCached(byteLength) {
    return byteLength > 0 && byteLength <= this.maxKeyLength;
  }
  find(bytes, inputOffset, byteLength) {
    const records = this.caches[byteLength - 1];
    FIND_CHUNK: for (const record of records) {
      const recordBytes = record.bytes;
      for (let j = 0; j < byteLength; j++) {
        if (recordBytes[j] !== bytes[inputOffset + j]) {
          continue FIND_CHUNK;
        }
      }
      return record.str;
    }
    return null;
  }
  store(bytes, value) {
    const records = this.caches[bytes.length - 1];
    const record = { bytes, str: value };
    if (records.length >= this.maxLengthPerKey) {
      records[Math.random() * records.length | 0] = record;
    } else {
      records.push(record);
    }
  }
  decode(bytes, inputOffset, byteLength) {
    const cachedValue = this.find(bytes, inputOffset, byteLength);
    if (cachedValue != null) {
      this.hit++;
      return cachedValue;
    }
    this.miss++;
    const str = utf8DecodeJs(bytes, inputOffset, byteLength);
    const slicedCopyOfBytes = Uint8Array.prototype.slice.call(bytes, inputOffset, inputOffset + byteLength);
    this.store(slicedCopyOfBytes, str);
    return str;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/Decoder.mjs
var STATE_ARRAY = "array";
var STATE_MAP_KEY = "map_key";
var STATE_MAP_VALUE = "map_value";
var mapKeyConverter = (key) => {
  if (typeof key === "string" || typeof key === "number") {
    return key;
  }
  throw new DecodeError("The type of key must be string or number but " + typeof key);
};
var StackPool = class {
  constructor() {
    __publicField(this, "stack", []);
    __publicField(this, "stackHeadPosition", -1);
  }
  get length() {
    return this.stackHeadPosition + 1;
  }
  top() {
    return this.stack[this.stackHeadPosition];
  }
  pushArrayState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_ARRAY;
    state.position = 0;
    state.size = size;
    state.array = new Array(size);
  }
  pushMapState(size) {
    const state = this.getUninitializedStateFromPool();
    state.type = STATE_MAP_KEY;
    state.readCount = 0;
    state.size = size;
    state.map = {};
  }
  getUninitializedStateFromPool() {
    this.stackHeadPosition++;
    if (this.stackHeadPosition === this.stack.length) {
      const partialState = {
        type: void 0,
        size: 0,
        array: void 0,
        position: 0,
        readCount: 0,
        map: void 0,
        key: null
      };
      this.stack.push(partialState);
    }
    return this.stack[this.stackHeadPosition];
  }
  release(state) {
    const topStackState = this.stack[this.stackHeadPosition];
    if (topStackState !== state) {
      throw new Error("Invalid stack state. Released state is not on top of the stack.");
    }
    if (state.type === STATE_ARRAY) {
      const partialState = state;
      partialState.size = 0;
      partialState.array = void 0;
      partialState.position = 0;
      partialState.type = void 0;
    }
    if (state.type === STATE_MAP_KEY || state.type === STATE_MAP_VALUE) {
      const partialState = state;
      partialState.size = 0;
      partialState.map = void 0;
      partialState.readCount = 0;
      partialState.type = void 0;
    }
    this.stackHeadPosition--;
  }
  reset() {
    this.stack.length = 0;
    this.stackHeadPosition = -1;
  }
};
var HEAD_BYTE_REQUIRED = -1;
var EMPTY_VIEW = new DataView(new ArrayBuffer(0));
var EMPTY_BYTES = new Uint8Array(EMPTY_VIEW.buffer);
try {
  EMPTY_VIEW.getInt8(0);
} catch (e) {
  if (!(e instanceof RangeError)) {
    throw new Error("This module is not supported in the current JavaScript engine because DataView does not throw RangeError on out-of-bounds access");
  }
}
var MORE_DATA = new RangeError("Insufficient data");
var sharedCachedKeyDecoder = new CachedKeyDecoder();
var Decoder = class _Decoder {
  constructor(options) {
    __publicField(this, "extensionCodec");
    __publicField(this, "context");
    __publicField(this, "useBigInt64");
    __publicField(this, "rawStrings");
    __publicField(this, "maxStrLength");
    __publicField(this, "maxBinLength");
    __publicField(this, "maxArrayLength");
    __publicField(this, "maxMapLength");
    __publicField(this, "maxExtLength");
    __publicField(this, "keyDecoder");
    __publicField(this, "mapKeyConverter");
    __publicField(this, "totalPos", 0);
    __publicField(this, "pos", 0);
    __publicField(this, "view", EMPTY_VIEW);
    __publicField(this, "bytes", EMPTY_BYTES);
    __publicField(this, "headByte", HEAD_BYTE_REQUIRED);
    __publicField(this, "stack", new StackPool());
    __publicField(this, "entered", false);
    this.extensionCodec = options?.extensionCodec ?? ExtensionCodec.defaultCodec;
    this.context = options?.context;
    this.useBigInt64 = options?.useBigInt64 ?? false;
    this.rawStrings = options?.rawStrings ?? false;
    this.maxStrLength = options?.maxStrLength ?? UINT32_MAX;
    this.maxBinLength = options?.maxBinLength ?? UINT32_MAX;
    this.maxArrayLength = options?.maxArrayLength ?? UINT32_MAX;
    this.maxMapLength = options?.maxMapLength ?? UINT32_MAX;
    this.maxExtLength = options?.maxExtLength ?? UINT32_MAX;
    this.keyDecoder = options?.keyDecoder !== void 0 ? options.keyDecoder : sharedCachedKeyDecoder;
    this.mapKeyConverter = options?.mapKeyConverter ?? mapKeyConverter;
  }
  clone() {
    return new _Decoder({
      extensionCodec: this.extensionCodec,
      context: this.context,
      useBigInt64: this.useBigInt64,
      rawStrings: this.rawStrings,
      maxStrLength: this.maxStrLength,
      maxBinLength: this.maxBinLength,
      maxArrayLength: this.maxArrayLength,
      maxMapLength: this.maxMapLength,
      maxExtLength: this.maxExtLength,
      keyDecoder: this.keyDecoder
    });
  }
  reinitializeState() {
    this.totalPos = 0;
    this.headByte = HEAD_BYTE_REQUIRED;
    this.stack.reset();
  }
  setBuffer(buffer) {
    const bytes = ensureUint8Array(buffer);
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  appendBuffer(buffer) {
    if (this.headByte === HEAD_BYTE_REQUIRED && !this.hasRemaining(1)) {
      this.setBuffer(buffer);
    } else {
      const remainingData = this.bytes.subarray(this.pos);
      const newData = ensureUint8Array(buffer);
      const newBuffer = new Uint8Array(remainingData.length + newData.length);
      newBuffer.set(remainingData);
      newBuffer.set(newData, remainingData.length);
      this.setBuffer(newBuffer);
    }
  }
  hasRemaining(size) {
    return this.view.byteLength - this.pos >= size;
  }
  createExtraByteError(posToShow) {
    const { view, pos } = this;
    return new RangeError(`Extra ${view.byteLength - pos} of ${view.byteLength} byte(s) found at buffer[${posToShow}]`);
  }
  /**
   * @throws {@link DecodeError}
   * @throws {@link RangeError}
   */
  decode(buffer) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decode(buffer);
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      const object = this.doDecodeSync();
      if (this.hasRemaining(1)) {
        throw this.createExtraByteError(this.pos);
      }
      return object;
    } finally {
      this.entered = false;
    }
  }
  *decodeMulti(buffer) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMulti(buffer);
      return;
    }
    try {
      this.entered = true;
      this.reinitializeState();
      this.setBuffer(buffer);
      while (this.hasRemaining(1)) {
        yield this.doDecodeSync();
      }
    } finally {
      this.entered = false;
    }
  }
  async decodeAsync(stream) {
    if (this.entered) {
      const instance = this.clone();
      return instance.decodeAsync(stream);
    }
    try {
      this.entered = true;
      let decoded = false;
      let object;
      for await (const buffer of stream) {
        if (decoded) {
          this.entered = false;
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        try {
          object = this.doDecodeSync();
          decoded = true;
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
      if (decoded) {
        if (this.hasRemaining(1)) {
          throw this.createExtraByteError(this.totalPos);
        }
        return object;
      }
      const { headByte, pos, totalPos } = this;
      throw new RangeError(`Insufficient data in parsing ${prettyByte(headByte)} at ${totalPos} (${pos} in the current buffer)`);
    } finally {
      this.entered = false;
    }
  }
  decodeArrayStream(stream) {
    return this.decodeMultiAsync(stream, true);
  }
  decodeStream(stream) {
    return this.decodeMultiAsync(stream, false);
  }
  async *decodeMultiAsync(stream, isArray) {
    if (this.entered) {
      const instance = this.clone();
      yield* instance.decodeMultiAsync(stream, isArray);
      return;
    }
    try {
      this.entered = true;
      let isArrayHeaderRequired = isArray;
      let arrayItemsLeft = -1;
      for await (const buffer of stream) {
        if (isArray && arrayItemsLeft === 0) {
          throw this.createExtraByteError(this.totalPos);
        }
        this.appendBuffer(buffer);
        if (isArrayHeaderRequired) {
          arrayItemsLeft = this.readArraySize();
          isArrayHeaderRequired = false;
          this.complete();
        }
        try {
          while (true) {
            yield this.doDecodeSync();
            if (--arrayItemsLeft === 0) {
              break;
            }
          }
        } catch (e) {
          if (!(e instanceof RangeError)) {
            throw e;
          }
        }
        this.totalPos += this.pos;
      }
    } finally {
      this.entered = false;
    }
  }
  doDecodeSync() {
    DECODE: while (true) {
      const headByte = this.readHeadByte();
      let object;
      if (headByte >= 224) {
        object = headByte - 256;
      } else if (headByte < 192) {
        if (headByte < 128) {
          object = headByte;
        } else if (headByte < 144) {
          const size = headByte - 128;
          if (size !== 0) {
            this.pushMapState(size);
            this.complete();
            continue DECODE;
          } else {
            object = {};
          }
        } else if (headByte < 160) {
          const size = headByte - 144;
          if (size !== 0) {
            this.pushArrayState(size);
            this.complete();
            continue DECODE;
          } else {
            object = [];
          }
        } else {
          const byteLength = headByte - 160;
          object = this.decodeString(byteLength, 0);
        }
      } else if (headByte === 192) {
        object = null;
      } else if (headByte === 194) {
        object = false;
      } else if (headByte === 195) {
        object = true;
      } else if (headByte === 202) {
        object = this.readF32();
      } else if (headByte === 203) {
        object = this.readF64();
      } else if (headByte === 204) {
        object = this.readU8();
      } else if (headByte === 205) {
        object = this.readU16();
      } else if (headByte === 206) {
        object = this.readU32();
      } else if (headByte === 207) {
        if (this.useBigInt64) {
          object = this.readU64AsBigInt();
        } else {
          object = this.readU64();
        }
      } else if (headByte === 208) {
        object = this.readI8();
      } else if (headByte === 209) {
        object = this.readI16();
      } else if (headByte === 210) {
        object = this.readI32();
      } else if (headByte === 211) {
        if (this.useBigInt64) {
          object = this.readI64AsBigInt();
        } else {
          object = this.readI64();
        }
      } else if (headByte === 217) {
        const byteLength = this.lookU8();
        object = this.decodeString(byteLength, 1);
      } else if (headByte === 218) {
        const byteLength = this.lookU16();
        object = this.decodeString(byteLength, 2);
      } else if (headByte === 219) {
        const byteLength = this.lookU32();
        object = this.decodeString(byteLength, 4);
      } else if (headByte === 220) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 221) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushArrayState(size);
          this.complete();
          continue DECODE;
        } else {
          object = [];
        }
      } else if (headByte === 222) {
        const size = this.readU16();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 223) {
        const size = this.readU32();
        if (size !== 0) {
          this.pushMapState(size);
          this.complete();
          continue DECODE;
        } else {
          object = {};
        }
      } else if (headByte === 196) {
        const size = this.lookU8();
        object = this.decodeBinary(size, 1);
      } else if (headByte === 197) {
        const size = this.lookU16();
        object = this.decodeBinary(size, 2);
      } else if (headByte === 198) {
        const size = this.lookU32();
        object = this.decodeBinary(size, 4);
      } else if (headByte === 212) {
        object = this.decodeExtension(1, 0);
      } else if (headByte === 213) {
        object = this.decodeExtension(2, 0);
      } else if (headByte === 214) {
        object = this.decodeExtension(4, 0);
      } else if (headByte === 215) {
        object = this.decodeExtension(8, 0);
      } else if (headByte === 216) {
        object = this.decodeExtension(16, 0);
      } else if (headByte === 199) {
        const size = this.lookU8();
        object = this.decodeExtension(size, 1);
      } else if (headByte === 200) {
        const size = this.lookU16();
        object = this.decodeExtension(size, 2);
      } else if (headByte === 201) {
        const size = this.lookU32();
        object = this.decodeExtension(size, 4);
      } else {
        throw new DecodeError(`Unrecognized type byte: ${prettyByte(headByte)}`);
      }
      this.complete();
      const stack = this.stack;
      while (stack.length > 0) {
        const state = stack.top();
        if (state.type === STATE_ARRAY) {
          state.array[state.position] = object;
          state.position++;
          if (state.position === state.size) {
            object = state.array;
            stack.release(state);
          } else {
            continue DECODE;
          }
        } else if (state.type === STATE_MAP_KEY) {
          if (object === "__proto__") {
            throw new DecodeError("The key __proto__ is not allowed");
          }
          state.key = this.mapKeyConverter(object);
          state.type = STATE_MAP_VALUE;
          continue DECODE;
        } else {
          state.map[state.key] = object;
          state.readCount++;
          if (state.readCount === state.size) {
            object = state.map;
            stack.release(state);
          } else {
            state.key = null;
            state.type = STATE_MAP_KEY;
            continue DECODE;
          }
        }
      }
      return object;
    }
  }
  readHeadByte() {
    if (this.headByte === HEAD_BYTE_REQUIRED) {
      this.headByte = this.readU8();
    }
    return this.headByte;
  }
  complete() {
    this.headByte = HEAD_BYTE_REQUIRED;
  }
  readArraySize() {
    const headByte = this.readHeadByte();
    switch (headByte) {
      case 220:
        return this.readU16();
      case 221:
        return this.readU32();
      default: {
        if (headByte < 160) {
          return headByte - 144;
        } else {
          throw new DecodeError(`Unrecognized array type byte: ${prettyByte(headByte)}`);
        }
      }
    }
  }
  pushMapState(size) {
    if (size > this.maxMapLength) {
      throw new DecodeError(`Max length exceeded: map length (${size}) > maxMapLengthLength (${this.maxMapLength})`);
    }
    this.stack.pushMapState(size);
  }
  pushArrayState(size) {
    if (size > this.maxArrayLength) {
      throw new DecodeError(`Max length exceeded: array length (${size}) > maxArrayLength (${this.maxArrayLength})`);
    }
    this.stack.pushArrayState(size);
  }
  decodeString(byteLength, headerOffset) {
    if (!this.rawStrings || this.stateIsMapKey()) {
      return this.decodeUtf8String(byteLength, headerOffset);
    }
    return this.decodeBinary(byteLength, headerOffset);
  }
  /**
   * @throws {@link RangeError}
   */
  decodeUtf8String(byteLength, headerOffset) {
    if (byteLength > this.maxStrLength) {
      throw new DecodeError(`Max length exceeded: UTF-8 byte length (${byteLength}) > maxStrLength (${this.maxStrLength})`);
    }
    if (this.bytes.byteLength < this.pos + headerOffset + byteLength) {
      throw MORE_DATA;
    }
    const offset = this.pos + headerOffset;
    let object;
    if (this.stateIsMapKey() && this.keyDecoder?.canBeCached(byteLength)) {
      object = this.keyDecoder.decode(this.bytes, offset, byteLength);
    } else {
      object = utf8Decode(this.bytes, offset, byteLength);
    }
    this.pos += headerOffset + byteLength;
    return object;
  }
  stateIsMapKey() {
    if (this.stack.length > 0) {
      const state = this.stack.top();
      return state.type === STATE_MAP_KEY;
    }
    return false;
  }
  /**
   * @throws {@link RangeError}
   */
  decodeBinary(byteLength, headOffset) {
    if (byteLength > this.maxBinLength) {
      throw new DecodeError(`Max length exceeded: bin length (${byteLength}) > maxBinLength (${this.maxBinLength})`);
    }
    if (!this.hasRemaining(byteLength + headOffset)) {
      throw MORE_DATA;
    }
    const offset = this.pos + headOffset;
    const object = this.bytes.subarray(offset, offset + byteLength);
    this.pos += headOffset + byteLength;
    return object;
  }
  decodeExtension(size, headOffset) {
    if (size > this.maxExtLength) {
      throw new DecodeError(`Max length exceeded: ext length (${size}) > maxExtLength (${this.maxExtLength})`);
    }
    const extType = this.view.getInt8(this.pos + headOffset);
    const data = this.decodeBinary(
      size,
      headOffset + 1
      /* extType */
    );
    return this.extensionCodec.decode(data, extType, this.context);
  }
  lookU8() {
    return this.view.getUint8(this.pos);
  }
  lookU16() {
    return this.view.getUint16(this.pos);
  }
  lookU32() {
    return this.view.getUint32(this.pos);
  }
  readU8() {
    const value = this.view.getUint8(this.pos);
    this.pos++;
    return value;
  }
  readI8() {
    const value = this.view.getInt8(this.pos);
    this.pos++;
    return value;
  }
  readU16() {
    const value = this.view.getUint16(this.pos);
    this.pos += 2;
    return value;
  }
  readI16() {
    const value = this.view.getInt16(this.pos);
    this.pos += 2;
    return value;
  }
  readU32() {
    const value = this.view.getUint32(this.pos);
    this.pos += 4;
    return value;
  }
  readI32() {
    const value = this.view.getInt32(this.pos);
    this.pos += 4;
    return value;
  }
  readU64() {
    const value = getUint64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readI64() {
    const value = getInt64(this.view, this.pos);
    this.pos += 8;
    return value;
  }
  readU64AsBigInt() {
    const value = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return value;
  }
  readI64AsBigInt() {
    const value = this.view.getBigInt64(this.pos);
    this.pos += 8;
    return value;
  }
  readF32() {
    const value = this.view.getFloat32(this.pos);
    this.pos += 4;
    return value;
  }
  readF64() {
    const value = this.view.getFloat64(this.pos);
    this.pos += 8;
    return value;
  }
};

// node_modules/@msgpack/msgpack/dist.esm/decode.mjs
function decode(buffer, options) {
  const decoder = new Decoder(options);
  return decoder.decode(buffer);
}

// src/backoff.ts
var ExponentialBackoff = class {
  constructor(base = 0.1, cap = 5, jitter = true, random = Math.random) {
    this.base = base;
    this.cap = cap;
    this.jitter = jitter;
    this.random = random;
    this.failures = 0;
    if (!(base > 0) || !(cap >= base)) {
      throw new RangeError(`backoff needs 0 < base <= cap, got base=${base}, cap=${cap}`);
    }
  }
  ceiling(failures) {
    return Math.min(this.cap, this.base * 2 ** Math.min(failures, 64));
  }
  nextDelay() {
    const ceiling = this.ceiling(this.failures);
    this.failures += 1;
    return this.jitter ? this.random() * ceiling : ceiling;
  }
  reset() {
    this.failures = 0;
  }
};

// src/ops.generated.ts
var OPS = {
  "user.upsert": {
    op: "user.upsert",
    method: "upsertUser",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "id": "id", "nickname": "nickname", "avatar": "avatar" },
    serverOnly: true,
    mutating: true
  },
  "room.create": {
    op: "room.create",
    method: "createRoom",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "name": "name", "type": "type", "members": "members", "owner": "owner", "custom": "custom" },
    serverOnly: false,
    mutating: true
  },
  "room.get": {
    op: "room.get",
    method: "getRoom",
    args: { "operator": "operator", "room": "room", "presence": "presence" },
    serverOnly: false,
    mutating: false
  },
  "room.list": {
    op: "room.list",
    method: "listRooms",
    args: { "operator": "operator" },
    serverOnly: false,
    mutating: false
  },
  "member.add": {
    op: "member.add",
    method: "addMembers",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "invitees": "invitees", "invitationRequired": "invitation_required", "systemMessage": "system_message" },
    serverOnly: false,
    mutating: true
  },
  "invitation.accept": {
    op: "invitation.accept",
    method: "acceptInvitation",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room" },
    serverOnly: false,
    mutating: true
  },
  "invitation.decline": {
    op: "invitation.decline",
    method: "declineInvitation",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room" },
    serverOnly: false,
    mutating: true
  },
  "member.update": {
    op: "member.update",
    method: "updateMember",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "user": "user", "properties": "properties", "systemMessage": "system_message", "notificationExtension": "notification_extension" },
    serverOnly: false,
    mutating: true
  },
  "member.remove": {
    op: "member.remove",
    method: "removeMember",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "user": "user" },
    serverOnly: false,
    mutating: true
  },
  "room.leave": {
    op: "room.leave",
    method: "leaveRoom",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room" },
    serverOnly: false,
    mutating: true
  },
  "room.history": {
    op: "room.history",
    method: "history",
    args: { "operator": "operator", "room": "room", "afterSeq": "after_seq", "limit": "limit" },
    serverOnly: false,
    mutating: false
  },
  "room.update": {
    op: "room.update",
    method: "updateRoom",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "name": "name", "custom": "custom" },
    serverOnly: false,
    mutating: true
  },
  "room.members": {
    op: "room.members",
    method: "listMembers",
    args: { "operator": "operator", "room": "room", "after": "after", "limit": "limit" },
    serverOnly: false,
    mutating: false
  },
  "room.transfer": {
    op: "room.transfer",
    method: "transferRoom",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "to": "to" },
    serverOnly: false,
    mutating: true
  },
  "invitation.cancel": {
    op: "invitation.cancel",
    method: "cancelInvitations",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room", "invitees": "invitees" },
    serverOnly: false,
    mutating: true
  },
  "room.dismiss": {
    op: "room.dismiss",
    method: "dismissRoom",
    args: { "operator": "operator", "reply": "reply", "idempotencyKey": "idempotency_key", "room": "room" },
    serverOnly: false,
    mutating: true
  },
  "room.watch": {
    op: "room.watch",
    method: "watchRoom",
    args: { "room": "room", "afterSeq": "after_seq" },
    serverOnly: true,
    mutating: false
  },
  "room.unwatch": {
    op: "room.unwatch",
    method: "unwatchRoom",
    args: { "room": "room" },
    serverOnly: true,
    mutating: false
  },
  "app.rooms": {
    op: "app.rooms",
    method: "appRooms",
    args: { "after": "after", "prefix": "prefix", "limit": "limit" },
    serverOnly: true,
    mutating: false
  },
  "room.presence": {
    op: "room.presence",
    method: "presence",
    args: { "operator": "operator", "room": "room" },
    serverOnly: false,
    mutating: false
  }
};
var ErrorCode = {
  INTERNAL: 100001,
  INVALID_PARAMETER: 100002,
  ROOM_EXISTS: 100003,
  ROOM_NOT_FOUND: 100004,
  NOT_A_MEMBER: 100005,
  FORBIDDEN: 100006,
  USER_NOT_FOUND: 100007,
  NO_INVITATION: 100008,
  RATE_LIMITED: 100009,
  UNAUTHENTICATED: 100010,
  UNKNOWN_OP: 100011,
  ROOM_FULL: 100012,
  MALFORMED_FRAME: 100013
};

// src/errors.ts
var RoomError = class _RoomError extends Error {
  constructor(code, reason, message, field, retryAfterMs) {
    super(message);
    this.name = "RoomError";
    this.code = code;
    this.reason = reason;
    if (field !== void 0 && field !== null) this.field = field;
    if (retryAfterMs !== void 0 && retryAfterMs !== null) this.retryAfterMs = retryAfterMs;
  }
  static fromWire(error) {
    if (typeof error !== "object" || error === null) {
      return new _RoomError(ErrorCode.INTERNAL, "INTERNAL", `malformed error reply: ${String(error)}`);
    }
    const e = error;
    const code = typeof e.code === "number" ? e.code : ErrorCode.INTERNAL;
    return new _RoomError(code, String(e.reason ?? "INTERNAL"), String(e.message ?? ""), e.field, e.retry_after_ms);
  }
};
var ConnectionLost = class extends Error {
  constructor(message, code, reason) {
    super(message);
    this.name = "ConnectionLost";
    if (code !== void 0) this.code = code;
    if (reason !== void 0) this.reason = reason;
  }
};

// src/resume.ts
var GONE = /* @__PURE__ */ new Set(["removeMember", "leaveRoom", "declineInvitation", "cancelInvitation"]);
var ENDS = /* @__PURE__ */ new Set(["dismissRoom"]);
var MAX_RESUME_ROOMS = 1024;
var MAX_RESUME_BYTES = 48 * 1024;
var ResumeState = class {
  constructor(resume) {
    this.seqs = /* @__PURE__ */ new Map();
    this.floors = /* @__PURE__ */ new Map();
    this.user = null;
    for (const [room, seq] of Object.entries(resume ?? {})) this.seqs.set(room, seq);
  }
  lastSeqs() {
    const out = {};
    for (const [r, s] of this.floors) out[r] = s;
    for (const [r, s] of this.seqs) out[r] = s;
    return out;
  }
  last(room) {
    return this.seqs.get(room) ?? this.floors.get(room);
  }
  knows(room) {
    return this.seqs.has(room) || this.floors.has(room);
  }
  /** Whether `message` is new (then it is recorded as delivered); false for a seq already
   * delivered, as a replay overlapping live messages repeats them. */
  accept(message) {
    const room = message.room;
    const last = this.seqs.get(room);
    if (last !== void 0) {
      if (message.seq <= last) return false;
      this.seqs.delete(room);
    }
    this.seqs.set(room, message.seq);
    this.floors.delete(room);
    return true;
  }
  /** After delivery: whether the room is over for this client (nothing more to resume). */
  ends(message) {
    return GONE.has(message.type) && this.user !== null && message.targets.includes(this.user) || ENDS.has(message.type);
  }
  forget(room) {
    this.seqs.delete(room);
    this.floors.delete(room);
  }
  resync(resync) {
    this.floors.delete(resync.room);
    if (resync.seq === 0) this.forget(resync.room);
    else this.seqs.set(resync.room, resync.seq);
  }
  created(room) {
    if (!this.seqs.has(room) && !this.floors.has(room)) this.floors.set(room, 0);
  }
  untracked(rooms) {
    return rooms.filter((room) => !this.knows(room));
  }
};
function fitResume(resume) {
  const rooms = Object.keys(resume);
  const kept = /* @__PURE__ */ new Set();
  let size = 0;
  for (let i = rooms.length - 1; i >= 0; i--) {
    size += new TextEncoder().encode(rooms[i]).length + 12;
    if (kept.size === MAX_RESUME_ROOMS || size > MAX_RESUME_BYTES) break;
    kept.add(rooms[i]);
  }
  if (kept.size === rooms.length) return [{ ...resume }, []];
  const out = {};
  const left = [];
  for (const r of rooms) {
    if (kept.has(r)) out[r] = resume[r];
    else left.push(r);
  }
  return [out, left];
}

// src/client.ts
var SUBPROTOCOL = { json: "roomhub.v1.json", msgpack: "roomhub.v1.msgpack" };
var RETRYABLE_AUTH = /* @__PURE__ */ new Set([ErrorCode.INTERNAL, ErrorCode.RATE_LIMITED]);
var NORMAL_CLOSURE = 1e3;
var CLOSE_UNAUTHENTICATED = 4401;
var CLOSE_PROTOCOL_ERROR = 1002;
function snake(name) {
  return name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}
function wireArgs(op, args) {
  const names = OPS[op]?.args ?? {};
  const out = {};
  for (const [k, v] of Object.entries(args ?? {})) {
    if (v === void 0) continue;
    out[names[k] ?? snake(k)] = v;
  }
  return out;
}
function randomKey() {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function defaultWebSocket() {
  const global = globalThis.WebSocket;
  if (global) return global;
  const name = "ws";
  try {
    const mod = await import(name);
    const ctor = mod.WebSocket ?? mod.default;
    if (ctor) return ctor;
  } catch {
  }
  throw new Error("no WebSocket: pass connect(url, {WebSocket}) or install the 'ws' package");
}
var RoomClient = class _RoomClient {
  constructor(url, opts) {
    /** the last auth result */
    this.welcome = null;
    this.watched = /* @__PURE__ */ new Set();
    this.listeners = {
      system: /* @__PURE__ */ new Set(),
      resync: /* @__PURE__ */ new Set(),
      snapshot: /* @__PURE__ */ new Set(),
      presence: /* @__PURE__ */ new Set(),
      state: /* @__PURE__ */ new Set(),
      disconnect: /* @__PURE__ */ new Set()
    };
    this.ctor = null;
    this.ws = null;
    this.nextId = 1;
    this.pending = /* @__PURE__ */ new Map();
    this.currentState = "connecting";
    this.closing = false;
    this.lost = null;
    this.stateWaiters = [];
    this.protocolError = false;
    if (!opts || typeof opts.key !== "string") throw new TypeError("connect needs {key}");
    if (typeof opts.token !== "string" && typeof opts.getToken !== "function") {
      throw new TypeError("connect needs {token} or {getToken}");
    }
    const encoding = opts.encoding ?? "json";
    if (encoding !== "json" && encoding !== "msgpack") {
      throw new TypeError(`encoding must be "json" or "msgpack", not ${String(encoding)}`);
    }
    this.url = url;
    this.opts = opts;
    this.encoding = encoding;
    this.reconnect = opts.reconnect ?? true;
    const [base, cap] = opts.backoff ?? [0.1, 5];
    this.backoff = new ExponentialBackoff(base, cap);
    this.resumeState = new ResumeState(opts.resume);
  }
  /** Connect and authenticate; rejects (RoomError, e.g. 100010 for a bad key or token, or an
   * Error when the hub cannot be reached) if the first connection fails. */
  static async connect(url, opts) {
    const client = new _RoomClient(url, opts);
    client.ctor = opts.WebSocket ?? await defaultWebSocket();
    client.notify("connecting");
    try {
      await client.open(true);
    } catch (error) {
      client.finish(new ConnectionLost(`could not connect: ${error.message}`));
      throw error;
    }
    return client;
  }
  // events ------------------------------------------------------------------------------
  /** Listen to an event; returns a function that removes the listener. */
  on(event, listener) {
    this.listeners[event].add(listener);
    return () => this.off(event, listener);
  }
  off(event, listener) {
    this.listeners[event].delete(listener);
  }
  emit(event, ...args) {
    for (const listener of [...this.listeners[event]]) {
      try {
        listener(...args);
      } catch (error) {
        console.error(`roomhub: a '${event}' listener failed`, error);
      }
    }
  }
  /** System messages from now on, in seq order per room, each once; ends after close().
   * Messages are buffered from this call on (not before). */
  messages() {
    const queue = [];
    let wake = null;
    let done = this.currentState === "closed";
    const offSystem = this.on("system", (m) => {
      queue.push(m);
      wake?.();
    });
    const offState = this.on("state", (s) => {
      if (s === "closed") {
        done = true;
        wake?.();
      }
    });
    const stop = () => {
      done = true;
      offSystem();
      offState();
      wake?.();
    };
    const iterator = {
      [Symbol.asyncIterator]: () => iterator,
      next: async () => {
        while (queue.length === 0 && !done) await new Promise((r) => {
          wake = r;
        });
        wake = null;
        if (queue.length > 0) return { value: queue.shift(), done: false };
        stop();
        return { value: void 0, done: true };
      },
      return: async () => {
        stop();
        queue.length = 0;
        return { value: void 0, done: true };
      }
    };
    return iterator;
  }
  // state -------------------------------------------------------------------------------
  get state() {
    return this.currentState;
  }
  /** the authenticated user id (the token's `sub`) */
  get user() {
    return this.welcome?.user ?? "";
  }
  /** room id -> the seq a reconnect resumes from (a copy) */
  get lastSeqs() {
    return this.resumeState.lastSeqs();
  }
  /** the rooms watched with watchRoom (re-watched after each reconnect) */
  get watchedRooms() {
    return [...this.watched];
  }
  notify(state) {
    this.currentState = state;
    const waiters = this.stateWaiters;
    this.stateWaiters = [];
    for (const w of waiters) w();
    this.emit("state", state);
  }
  /** A new ConnectionLost (its own stack) for why the client is not open. */
  fresh() {
    const lost = this.lost ?? new ConnectionLost("not connected");
    return new ConnectionLost(lost.message, lost.code, lost.reason);
  }
  /** Resolves once the state is "open"; rejects with ConnectionLost once it is "closed". */
  async waitOpen() {
    while (this.currentState !== "open") {
      if (this.currentState === "closed") throw this.fresh();
      await new Promise((r) => this.stateWaiters.push(r));
    }
  }
  /** Close the client and stop reconnecting; pending calls reject with ConnectionLost. */
  close() {
    if (this.currentState === "closed") return;
    this.closing = true;
    const ws = this.ws;
    this.finish(new ConnectionLost("connection closed by the client", NORMAL_CLOSURE));
    try {
      ws?.close(NORMAL_CLOSURE);
    } catch {
    }
  }
  // connecting --------------------------------------------------------------------------
  async token() {
    const value = this.opts.getToken ? await this.opts.getToken() : this.opts.token;
    if (typeof value !== "string") throw new TypeError("getToken must return a string");
    return value;
  }
  /** One connection: handshake, auth (resume), adopt rooms, re-watch; then state "open". */
  async open(first) {
    const token = await this.token();
    const ctor = this.ctor;
    const ws = new ctor(this.url, SUBPROTOCOL[this.encoding]);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    const timeoutMs = this.opts.connectTimeoutMs ?? 1e4;
    let timer;
    try {
      await new Promise((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`));
        ws.onclose = (e) => reject(new ConnectionLost(`closed during the handshake (code ${e.code})`, e.code, e.reason));
      });
      clearTimeout(timer);
      ws.onerror = null;
      ws.onmessage = (e) => this.onFrame(ws, e.data);
      ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
      const watchedHere = this.watched;
      const resumeAll = first ? { ...this.resumeState.lastSeqs() } : this.resumeState.lastSeqs();
      for (const room of watchedHere) delete resumeAll[room];
      const [resume, leftOut] = fitResume(resumeAll);
      const authArgs = { key: this.opts.key, token };
      if (Object.keys(resume).length > 0) authArgs.resume = resume;
      if (this.opts.presence) authArgs.presence = true;
      const welcome = await this.request(ws, "auth", authArgs, (frame) => {
        if (frame.ok === true) this.resumeState.user = frame.result.user;
      });
      await this.adopt(ws, welcome, first, leftOut);
      await this.rewatch(ws);
      if (this.ws !== ws || this.closing) throw new ConnectionLost("connection closed while opening");
      this.welcome = welcome;
      this.lost = null;
      this.backoff.reset();
      this.notify("open");
    } catch (error) {
      clearTimeout(timer);
      ws.onclose = null;
      ws.onmessage = null;
      ws.onopen = null;
      ws.onerror = null;
      try {
        ws.close();
      } catch {
      }
      this.failPending(ws, error instanceof ConnectionLost ? error : new ConnectionLost(String(error.message)));
      throw error;
    }
  }
  /** Resume points for the rooms of an auth result that have none (one room.list). */
  async adopt(ws, welcome, first, leftOut) {
    const untracked = this.reconnect ? this.resumeState.untracked(welcome.rooms) : [];
    if (untracked.length === 0 && leftOut.length === 0) return;
    const listed = await this.request(ws, "room.list", {});
    const seqs = new Map(listed.rooms.map((r) => [r.id, r.seq]));
    const resyncs = [];
    for (const room of untracked) {
      const seq = seqs.get(room);
      if (seq === void 0) continue;
      if (first) this.resumeState.floors.set(room, seq);
      else if (!this.resumeState.seqs.has(room)) resyncs.push({ room, seq });
    }
    for (const room of leftOut) {
      const seq = seqs.get(room);
      if (seq !== void 0) resyncs.push({ room, seq });
      else this.resumeState.forget(room);
    }
    for (const resync of resyncs) this.resynced(resync);
  }
  /** After a reconnect: room.watch again for each watched room, after the last seq seen. */
  async rewatch(ws) {
    await Promise.all(
      [...this.watched].map(async (room) => {
        const after = this.resumeState.last(room);
        const args = { room };
        if (after !== void 0) args.after_seq = after;
        try {
          await this.request(ws, "room.watch", args);
        } catch (error) {
          if (error instanceof RoomError && (error.code === ErrorCode.ROOM_NOT_FOUND || error.code === ErrorCode.NOT_A_MEMBER)) {
            this.watched.delete(room);
            this.resynced({ room, seq: 0 });
            return;
          }
          throw error;
        }
      })
    );
  }
  onClose(ws, code, reason) {
    if (this.ws !== ws) return;
    const text = this.closing ? "connection closed by the client" : `connection closed by the server (code ${code}${reason ? ": " + reason : ""})`;
    const lost = new ConnectionLost(text, code, reason);
    this.ended(ws, lost, code === CLOSE_PROTOCOL_ERROR && this.protocolError);
  }
  ended(ws, lost, final) {
    if (this.currentState !== "open") {
      this.failPending(ws, lost);
      return;
    }
    this.emit("disconnect", lost);
    const fixedToken = typeof this.opts.getToken !== "function";
    if (final || this.closing || !this.reconnect || lost.code === CLOSE_UNAUTHENTICATED && fixedToken) {
      this.finish(lost);
      return;
    }
    this.lost = new ConnectionLost(`${lost.message}; reconnecting`, lost.code, lost.reason);
    this.failPending(ws, lost);
    this.notify("reconnecting");
    void this.reconnectLoop();
  }
  async reconnectLoop() {
    while (!this.closing && this.currentState === "reconnecting") {
      await sleep(this.backoff.nextDelay() * 1e3);
      if (this.closing) return;
      try {
        await this.open(false);
        return;
      } catch (error) {
        if (error instanceof RoomError) {
          const fixedToken = typeof this.opts.getToken !== "function";
          if (error.code === ErrorCode.UNAUTHENTICATED && fixedToken) {
            this.finish(new ConnectionLost(`reconnect refused: ${error.message}`, CLOSE_UNAUTHENTICATED, error.message));
            return;
          }
          if (!RETRYABLE_AUTH.has(error.code) && error.code !== ErrorCode.UNAUTHENTICATED) {
            this.finish(new ConnectionLost(`reconnect refused: ${error.message}`));
            return;
          }
        }
      }
    }
  }
  failPending(ws, lost) {
    for (const [id, p] of this.pending) {
      if (p.ws !== ws) continue;
      this.pending.delete(id);
      p.reject(new ConnectionLost(lost.message, lost.code, lost.reason));
    }
  }
  finish(lost) {
    if (this.currentState === "closed") return;
    this.closing = true;
    this.lost = lost;
    for (const [, p] of this.pending) p.reject(new ConnectionLost(lost.message, lost.code, lost.reason));
    this.pending.clear();
    this.notify("closed");
    this.emit("disconnect", lost);
  }
  // the wire ----------------------------------------------------------------------------
  encode(frame) {
    return this.encoding === "json" ? JSON.stringify(frame) : encode(frame);
  }
  decode(data) {
    let frame;
    if (this.encoding === "json") {
      if (typeof data !== "string") throw new TypeError("binary frame on a JSON connection");
      frame = JSON.parse(data);
    } else {
      if (typeof data === "string") throw new TypeError("text frame on a msgpack connection");
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : data;
      frame = decode(bytes);
    }
    if (typeof frame !== "object" || frame === null || Array.isArray(frame)) throw new TypeError("frame is not a map");
    return frame;
  }
  onFrame(ws, data) {
    if (this.ws !== ws) return;
    let frame;
    try {
      frame = this.decode(data);
    } catch (error) {
      console.error("roomhub: protocol error, closing", error);
      this.protocolError = true;
      const lost = new ConnectionLost(`protocol error: ${error.message}`, CLOSE_PROTOCOL_ERROR);
      if (this.currentState === "open") this.ended(ws, lost, true);
      else this.failPending(ws, lost);
      try {
        ws.close(4e3, "client could not read a frame");
      } catch {
      }
      return;
    }
    const event = frame.event;
    if (event === "system") {
      this.deliver(frame.message);
    } else if (event === "resync") {
      this.resynced({ room: frame.room, seq: frame.seq });
    } else if (event === "presence") {
      const { room, user, online, time_ms } = frame;
      this.emit("presence", { room, user, online, time_ms });
    } else if (event === void 0 || event === null) {
      const re = frame.re;
      const p = this.pending.get(re);
      if (!p) return;
      this.pending.delete(re);
      try {
        p.onReply?.(frame);
      } catch (error) {
        console.error("roomhub: reply hook failed", error);
      }
      p.resolve(frame);
    }
  }
  deliver(message) {
    if (!this.resumeState.accept(message)) return;
    if (this.resumeState.ends(message)) {
      this.resumeState.forget(message.room);
      if (message.type === "dismissRoom") this.watched.delete(message.room);
    }
    this.emit("system", message);
  }
  /** A resync: the room's last seq is the resync's from now on; the event is emitted, and the
   * room is re-read with room.get (a `snapshot` event) unless it is gone (seq 0). */
  resynced(resync) {
    this.resumeState.resync(resync);
    if (resync.seq === 0) this.watched.delete(resync.room);
    this.emit("resync", { room: resync.room, seq: resync.seq });
    if (resync.seq === 0) return;
    queueMicrotask(() => {
      this.waitOpen().then(() => this.call("room.get", { room: resync.room })).then((room) => this.emit("snapshot", { room })).catch(() => {
      });
    });
  }
  request(ws, op, args, onReply) {
    const id = this.nextId++;
    const frame = { id, op };
    if (Object.keys(args).length > 0) frame.args = args;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onReply, ws });
      try {
        ws.send(this.encode(frame));
      } catch {
      }
    }).then((reply) => {
      if (reply.ok === true) return reply.result;
      throw RoomError.fromWire(reply.error);
    });
  }
  // calls -------------------------------------------------------------------------------
  /** Any op by its wire name, with wire (snake_case) args; resolves to the wire's result. */
  async call(op, args = {}, onReply) {
    if (this.currentState !== "open" || !this.ws) throw this.fresh();
    const spec = OPS[op];
    if (!spec?.mutating || this.opts.idempotency === false) return this.request(this.ws, op, args, onReply);
    const keyed = { idempotency_key: randomKey(), ...args };
    return this.exactlyOnce(op, keyed, onReply);
  }
  /** A mutating call with its idempotency key: sent again with the same key after a lost reply
   * (once a reconnect is open), or after "store unavailable"; applied at most once. */
  async exactlyOnce(op, args, onReply) {
    const storeBackoff = new ExponentialBackoff(0.1, Infinity, false);
    for (; ; ) {
      try {
        if (this.currentState !== "open" || !this.ws) throw this.fresh();
        return await this.request(this.ws, op, args, onReply);
      } catch (error) {
        if (error instanceof ConnectionLost) {
          if (!this.reconnect || this.closing || this.currentState === "closed") throw error;
          await this.waitOpen();
          continue;
        }
        if (error instanceof RoomError) {
          const unavailable = error.code === ErrorCode.INTERNAL && error.message.includes("unavailable");
          if (!unavailable || storeBackoff.failures >= (this.opts.storeRetries ?? 3)) throw error;
          await sleep(storeBackoff.nextDelay() * 1e3);
          if (this.currentState !== "open") {
            if (!this.reconnect || this.closing) throw error;
            await this.waitOpen();
          }
          continue;
        }
        throw error;
      }
    }
  }
  op(name, args, onReply) {
    return this.call(name, wireArgs(name, args), onReply);
  }
  // the ops (one per op of the op table; checked at compile time below) -------------------
  /** Create or update a user's profile (server tokens). */
  upsertUser(args) {
    return this.op("user.upsert", args);
  }
  /** Create a room; a user's own room is resumed from its start. */
  async createRoom(args) {
    const result = await this.op("room.create", args);
    if (args.owner === void 0 && args.operator === void 0) {
      this.resumeState.created("id" in result ? result.id : result.room);
    }
    return result;
  }
  /** The room, members and invitations; `presence: true` sets each member's `online`. */
  getRoom(args) {
    return this.op("room.get", args);
  }
  /** The room's members online now (a connection open on any hub node). */
  presence(args) {
    return this.op("room.presence", args);
  }
  /** The caller's rooms (member or invited), without members. */
  listRooms(args = {}) {
    return this.op("room.list", args);
  }
  addMembers(args) {
    return this.op("member.add", args);
  }
  acceptInvitation(args) {
    return this.op("invitation.accept", args);
  }
  declineInvitation(args) {
    return this.op("invitation.decline", args);
  }
  updateMember(args) {
    return this.op("member.update", args);
  }
  removeMember(args) {
    return this.op("member.remove", args);
  }
  leaveRoom(args) {
    return this.op("room.leave", args);
  }
  history(args) {
    return this.op("room.history", args);
  }
  updateRoom(args) {
    return this.op("room.update", args);
  }
  listMembers(args) {
    return this.op("room.members", args);
  }
  transferRoom(args) {
    return this.op("room.transfer", args);
  }
  cancelInvitations(args) {
    return this.op("invitation.cancel", args);
  }
  dismissRoom(args) {
    return this.op("room.dismiss", args);
  }
  /** Follow a room live (server tokens): its system events from after `afterSeq` (or the
   * reply's seq), gapless; re-watched after every reconnect from the last seq seen. */
  watchRoom(args) {
    const room = args.room;
    if (args.afterSeq !== void 0 && !this.resumeState.knows(room)) {
      this.resumeState.seqs.set(room, args.afterSeq);
    }
    return this.op("room.watch", args, (frame) => {
      if (frame.ok !== true) return;
      if (!this.resumeState.knows(room)) this.resumeState.seqs.set(room, frame.result.seq);
      this.watched.add(room);
    });
  }
  async unwatchRoom(args) {
    const result = await this.op("room.unwatch", args);
    this.watched.delete(args.room);
    this.resumeState.forget(args.room);
    return result;
  }
  /** The app's rooms, by id, a page at a time (server tokens). */
  appRooms(args = {}) {
    return this.op("app.rooms", args);
  }
};
var _everyOpHasAMethod = RoomClient.prototype;
export {
  ConnectionLost,
  ErrorCode,
  ExponentialBackoff,
  OPS,
  RoomClient,
  RoomError,
  wireArgs
};
