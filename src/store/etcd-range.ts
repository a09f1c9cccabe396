import { Client, credentials, Metadata, type ClientUnaryCall } from '@grpc/grpc-js';

/** One key of a range read, as text: the tree read needs nothing else (no revisions, no lease). */
export interface TreeKV {
  key: string;
  value: string;
}

export interface RangePage {
  /** The store revision the answer was read at. */
  revision: string;
  kvs: TreeKV[];
  /** More keys are left in the range past the limit. */
  more: boolean;
}

export interface RangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  /** 0: no limit. */
  limit: number;
  /** 0: the newest revision. */
  revision: number;
}

/**
 * etcd's KV.Range over gRPC with a decoder of its own for the answer. A scheduler's start reads
 * the whole tree (over two million keys at 100,000 procs); the etcd3 library decodes every key
 * into an object with its create and mod revisions, version and lease as decimal strings, and two
 * Buffers, which was a third of the start's CPU profile (Long.toString, KeyValue.toObject and the
 * garbage they leave; BENCHMARKS.md, scale). Here each key becomes two strings, read straight out
 * of the answer's bytes. Only for reads: everything else goes through the etcd3 client.
 */
export class RangeReader {
  private readonly client: Client;

  /** `url`: one etcd client URL, http://host:port (the tree read needs no TLS or auth: connectEtcd has none). */
  constructor(url: string, maxAnswerBytes: number) {
    const u = new URL(url);
    if (u.protocol !== 'http:') throw new Error(`RangeReader speaks plain gRPC only, not ${u.protocol}`);
    this.client = new Client(u.host, credentials.createInsecure(), { 'grpc.max_receive_message_length': maxAnswerBytes });
  }

  /** Resolves once connected; rejects if that takes over `ms` (a member that is down or cut off). */
  ready(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(Date.now() + ms, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** One Range call; a page of 16 MiB from a loaded etcd can take seconds, hence the long deadline. */
  range(req: RangeRequest, timeoutMs = 30_000): Promise<RangePage> {
    return new Promise((resolve, reject) => {
      const call: ClientUnaryCall = this.client.makeUnaryRequest('/etcdserverpb.KV/Range', encodeRangeRequest, decodeRangeResponse, req, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, page) => {
        if (err || !page) reject(err ?? new Error('empty Range answer'));
        else resolve(page);
      });
      void call;
    });
  }

  close(): void {
    this.client.close();
  }
}

// ---- the protobuf wire format, for the few fields used ----
// Written out rather than decoded with protobufjs (a dependency already): messages naming only
// the key and the value decoded a 131,000-key page in 323-423 ms with protobufjs, against
// 90-130 ms here, about 4 s more over a 100,000-proc start (2026-11-30).

function varint(out: number[], n: number): void {
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** RangeRequest: key = 1, range_end = 2, limit = 3, revision = 4 (etcd's rpc.proto). */
export function encodeRangeRequest(req: RangeRequest): Buffer {
  const head: number[] = [];
  const parts: Buffer[] = [];
  for (const [field, bytes] of [[1, req.key], [2, req.rangeEnd]] as const) {
    const tag: number[] = [];
    varint(tag, (field << 3) | 2);
    varint(tag, bytes.length);
    parts.push(Buffer.from(tag), bytes);
  }
  if (req.limit > 0) {
    head.push((3 << 3) | 0);
    varint(head, req.limit);
  }
  if (req.revision > 0) {
    head.push((4 << 3) | 0);
    varint(head, req.revision);
  }
  return Buffer.concat([...parts, Buffer.from(head)]);
}

/** A cursor over protobuf bytes. */
class Reader {
  pos: number;

  constructor(readonly buf: Buffer, start: number, readonly end: number) {
    this.pos = start;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (;;) {
      if (this.pos >= this.end) throw new Error('truncated varint in a Range answer');
      const b = this.buf[this.pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 0x80;
    }
  }

  /** Passes over a field of `wireType` (tag already read). */
  pass(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 2) this.pos += this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`unexpected wire type ${wireType} in a Range answer`);
  }
}

/**
 * RangeResponse: header = 1 (ResponseHeader, revision = 3), kvs = 2 (KeyValue: key = 1,
 * value = 5; create_revision, mod_revision, version and lease skipped), more = 3, count = 4.
 */
export function decodeRangeResponse(buf: Buffer): RangePage {
  const r = new Reader(buf, 0, buf.length);
  let revision = 0;
  let more = false;
  const kvs: TreeKV[] = [];
  while (r.pos < r.end) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (field === 1 && wire === 2) {
      const len = r.varint();
      const h = new Reader(buf, r.pos, r.pos + len);
      while (h.pos < h.end) {
        const t = h.varint();
        if (t === ((3 << 3) | 0)) revision = h.varint();
        else h.pass(t & 7);
      }
      r.pos += len;
    } else if (field === 2 && wire === 2) {
      const len = r.varint();
      const end = r.pos + len;
      let key = '';
      let value = '';
      while (r.pos < end) {
        const t = r.varint();
        if (t === ((1 << 3) | 2) || t === ((5 << 3) | 2)) {
          const n = r.varint();
          const text = buf.toString('utf8', r.pos, r.pos + n);
          r.pos += n;
          if (t === ((1 << 3) | 2)) key = text;
          else value = text;
        } else {
          r.pass(t & 7);
        }
      }
      kvs.push({ key, value });
    } else if (field === 3 && wire === 0) {
      more = r.varint() !== 0;
    } else {
      r.pass(wire);
    }
  }
  return { revision: String(revision), kvs, more };
}
