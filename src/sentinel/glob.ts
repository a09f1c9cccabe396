/**
 * Redis-style glob patterns for PSUBSCRIBE, matched byte by byte with the same meaning as
 * Redis's `stringmatchlen`: `*` (any run of bytes), `?` (one byte), `[abc]`, `[a-z]`, `[^...]`,
 * and `\x` for a literal `x`.
 *
 * Patterns used to become regular expressions, and a pattern of many stars made the regex engine
 * backtrack for seconds per event (issue 7, A1). Here a pattern is compiled once into tokens and
 * matched by remembering only the most recent `*`: every other token eats exactly one byte, so
 * retrying from the last star is enough, and a match costs at most pattern × channel steps.
 */

/** Longest pattern a client may subscribe to, in bytes. */
export const MAX_PATTERN_BYTES = 256;

type Token =
  | { kind: 'star' }
  | { kind: 'any' }
  | { kind: 'byte'; value: number }
  | { kind: 'set'; members: Uint8Array };

export class Glob {
  private readonly tokens: Token[];

  constructor(readonly pattern: string) {
    this.tokens = compile(Buffer.from(pattern, 'utf8'));
  }

  matches(subject: string | Buffer): boolean {
    const bytes = typeof subject === 'string' ? Buffer.from(subject, 'utf8') : subject;
    return matchTokens(this.tokens, bytes);
  }
}

/** True when `subject` matches the Redis glob `pattern`. Compiles the pattern on every call. */
export function globMatch(pattern: string, subject: string): boolean {
  return new Glob(pattern).matches(subject);
}

function compile(p: Buffer): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < p.length) {
    const c = p[i];
    if (c === 0x2a /* * */) {
      // A run of stars means the same as one star.
      if (tokens.at(-1)?.kind !== 'star') tokens.push({ kind: 'star' });
      i++;
    } else if (c === 0x3f /* ? */) {
      tokens.push({ kind: 'any' });
      i++;
    } else if (c === 0x5b /* [ */) {
      const set = compileSet(p, i + 1);
      tokens.push({ kind: 'set', members: set.members });
      i = set.next;
    } else if (c === 0x5c /* \ */ && i + 1 < p.length) {
      tokens.push({ kind: 'byte', value: p[i + 1] });
      i += 2;
    } else {
      // A trailing backslash is a literal backslash, as in Redis.
      tokens.push({ kind: 'byte', value: c });
      i++;
    }
  }
  return tokens;
}

/**
 * A bracket class starting just after `[`. Follows Redis's reading of the odd cases too: `]`
 * right after `[` closes an empty class, a class left open runs to the end of the pattern, and
 * a range whose end is `]` takes the `]` as its end.
 */
function compileSet(p: Buffer, from: number): { members: Uint8Array; next: number } {
  const members = new Uint8Array(256);
  let i = from;
  const negate = p[i] === 0x5e; /* ^ */
  if (negate) i++;
  for (;;) {
    if (i >= p.length) break;
    if (p[i] === 0x5c && i + 1 < p.length) {
      members[p[i + 1]] = 1;
      i += 2;
    } else if (p[i] === 0x5d /* ] */) {
      i++;
      break;
    } else if (i + 2 < p.length && p[i + 1] === 0x2d /* - */) {
      const lo = Math.min(p[i], p[i + 2]);
      const hi = Math.max(p[i], p[i + 2]);
      members.fill(1, lo, hi + 1);
      i += 3;
    } else {
      members[p[i]] = 1;
      i++;
    }
  }
  if (negate) for (let b = 0; b < 256; b++) members[b] ^= 1;
  return { members, next: i };
}

function eatsByte(t: Token, b: number): boolean {
  switch (t.kind) {
    case 'any':
      return true;
    case 'byte':
      return t.value === b;
    case 'set':
      return t.members[b] === 1;
    case 'star':
      return false;
  }
}

function matchTokens(tokens: Token[], s: Buffer): boolean {
  // Redis never lets a pattern match the empty string, `*` included (only "" matches "").
  if (s.length === 0) return tokens.length === 0;
  let t = 0;
  let i = 0;
  let starAt = -1; // token index of the last `*` seen
  let starFrom = 0; // subject position that star currently ends at
  while (i < s.length) {
    const tok = tokens[t];
    if (tok !== undefined && tok.kind === 'star') {
      starAt = t++;
      starFrom = i;
    } else if (tok !== undefined && eatsByte(tok, s[i])) {
      t++;
      i++;
    } else if (starAt >= 0) {
      // Let the last star eat one byte more and retry the rest of the pattern from there.
      t = starAt + 1;
      i = ++starFrom;
    } else {
      return false;
    }
  }
  while (t < tokens.length && tokens[t].kind === 'star') t++;
  return t === tokens.length;
}
