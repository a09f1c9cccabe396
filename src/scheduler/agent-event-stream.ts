import type { IncomingMessage, ServerResponse } from 'node:http';
import { encodeFrame } from '../proto/recordio.js';
import { sealEvent } from '../proto/sealed-event.js';
import type { EventSink } from './agent-entry.js';

/**
 * Turns a SUBSCRIBE's response into the agent's event stream: RecordIO frames of `Event`s sealed
 * with the session's event key. `onClose` runs once the connection is gone.
 */
export function openEventStream(req: IncomingMessage, res: ServerResponse, key: Buffer, onClose: (sink: EventSink) => void): EventSink {
  res.writeHead(200, { 'Content-Type': 'application/recordio', 'Record-IO-Content-Type': 'application/x-protobuf', 'Cache-Control': 'no-cache' });
  req.socket.setNoDelay(true);
  req.socket.setTimeout(0);
  let open = true;
  let seq = 0;
  let backedUpSince = 0;
  res.on('drain', () => {
    backedUpSince = 0;
  });
  const sink: EventSink = {
    send: (event) => {
      if (!open) return;
      seq += 1;
      const flowing = res.write(encodeFrame(sealEvent(key, seq, event)));
      if (!flowing && backedUpSince === 0) backedUpSince = Date.now();
    },
    close: (abort = false) => {
      if (!open) return;
      open = false;
      if (abort) res.destroy();
      else res.end();
    },
    backedUpSince: () => backedUpSince,
  };
  res.on('close', () => {
    open = false;
    onClose(sink);
  });
  return sink;
}
