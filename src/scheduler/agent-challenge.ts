import type { ServerResponse } from 'node:http';
import { randomToken } from '../store/secrets.js';

const NONCE_TTL_MS = 30_000;
/** Outstanding nonces kept at most; the oldest make room (a flood can only delay a real agent's retry). */
const MAX_NONCES = 10_000;

/** The single-use nonces a signed SUBSCRIBE is signed over (30 s each). */
export class AgentChallenge {
  private readonly nonces = new Map<string, number>();

  /** Hands out a fresh nonce as the challenge reply. */
  issue(res: ServerResponse): void {
    const now = Date.now();
    for (const [nonce, expires] of this.nonces) {
      if (expires > now && this.nonces.size < MAX_NONCES) break;
      this.nonces.delete(nonce);
    }
    const nonce = randomToken();
    this.nonces.set(nonce, now + NONCE_TTL_MS);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
    res.end(JSON.stringify({ nonce, expiresInSeconds: NONCE_TTL_MS / 1000 }));
  }

  /** Removes the nonce whatever the outcome, so each one is tried once. */
  take(nonce: string): boolean {
    const expires = this.nonces.get(nonce);
    this.nonces.delete(nonce);
    return expires !== undefined && expires > Date.now();
  }
}
