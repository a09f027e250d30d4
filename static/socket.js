// One websocket per tab: reconnects with full-jitter backoff, pings, and
// notices a silent (half-open) connection.

import { sessionAlive } from './api.js';

const PING_EVERY_MS = 20_000;
const SILENCE_LIMIT_MS = 60_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 20_000;

export class Socket {
  /**
   * @param {object} handlers
   *   onEvent(event)            one server event (arrays are unpacked)
   *   onStatus(status, info)    'connecting' | 'open' | 'closed' (info.retryIn ms)
   *   onAuthLost()              the session is gone
   *   onTick()                  optional: every ping interval while open
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.watchTimer = null;
    this.lastFrameAt = 0;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Reset backoff once the server greeted us (not merely on open). */
  healthy() {
    this.attempt = 0;
  }

  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  reconnectNow() {
    if (this.isOpen || this.ws?.readyState === WebSocket.CONNECTING) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  connect() {
    this.handlers.onStatus('connecting', {});
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect({ opened: false, code: 1006 });
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastFrameAt = Date.now();
      this.startTimers();
      this.handlers.onStatus('open', {});
    };
    ws.onmessage = (msg) => {
      this.lastFrameAt = Date.now();
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      const events = Array.isArray(data) ? data : [data];
      for (const event of events) {
        if (!event || typeof event !== 'object' || typeof event.type !== 'string') continue;
        try {
          this.handlers.onEvent(event);
        } catch (err) {
          console.error('chatapp: failed to handle event', event.type, err);
        }
      }
    };
    ws.onclose = (ev) => this.dropped(ws, { opened, code: ev.code });
    ws.onerror = () => { /* a close event follows */ };
  }

  /** Forget this socket at once (a half-open close may never complete) and retry. */
  dropped(ws, info) {
    if (ws !== this.ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      try { ws.close(4000, 'client timeout'); } catch { /* already closing */ }
    }
    this.ws = null;
    this.stopTimers();
    if (!this.stopped) this.scheduleReconnect(info);
  }

  async scheduleReconnect({ opened, code }) {
    if (code === 1008 || code === 4401) {
      // A policy close usually means "logged out" (here or in another tab). Ask
      // before knocking again: the browser logs a refused handshake as an error.
      this.handlers.onStatus('closed', { retryIn: 0, code });
      const alive = await sessionAlive();
      if (this.stopped || this.ws || this.retryTimer) return; // stopped or reconnected meanwhile
      if (alive === false) {
        this.stop();
        this.handlers.onAuthLost();
        return;
      }
      opened = true; // signed in after all: no second check below
    }
    const delay = Math.max(
      BACKOFF_BASE_MS,
      Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt),
    );
    this.attempt = Math.min(this.attempt + 1, 16);
    this.handlers.onStatus('closed', { retryIn: delay, code });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    // A refused handshake may mean we were logged out.
    if (!opened) {
      if ((await sessionAlive()) === false) {
        this.stop();
        this.handlers.onAuthLost();
      }
    }
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopTimers();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(1000); } catch { /* ignore */ }
    }
  }

  startTimers() {
    this.stopTimers();
    this.pingTimer = setInterval(() => {
      this.send({ type: 'ping' });
      this.handlers.onTick?.();
    }, PING_EVERY_MS);
    this.watchTimer = setInterval(() => {
      if (this.ws && Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
        this.dropped(this.ws, { opened: true, code: 4000 });
      }
    }, 5_000);
  }

  stopTimers() {
    clearInterval(this.pingTimer);
    clearInterval(this.watchTimer);
    this.pingTimer = this.watchTimer = null;
  }
}
