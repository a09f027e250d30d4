// Messages typed but not yet confirmed by the server, kept across reloads of
// the tab (sessionStorage) and resent with their original nonce, which the
// server de-duplicates.

export class Outbox {
  constructor(key) {
    this.key = key;
    this.items = new Map(); // nonce -> {nonce, room, body, state, error, ts}
  }

  get(nonce) { return this.items.get(nonce); }
  has(nonce) { return this.items.has(nonce); }
  values() { return this.items.values(); }

  add(item) {
    this.items.set(item.nonce, item);
    this.save();
  }

  delete(nonce) {
    const had = this.items.delete(nonce);
    if (had) this.save();
    return had;
  }

  save() {
    try {
      // 'sent' items are stored server-side already; a reload shows them from history.
      const items = [...this.items.values()].filter((i) => i.state !== 'sent');
      if (items.length) sessionStorage.setItem(this.key, JSON.stringify(items));
      else sessionStorage.removeItem(this.key);
    } catch { /* storage full or disabled */ }
  }

  restore() {
    try {
      const items = JSON.parse(sessionStorage.getItem(this.key) ?? '[]');
      for (const item of items) {
        if (typeof item?.nonce === 'string' && typeof item.body === 'string' && typeof item.room === 'string') {
          this.items.set(item.nonce, { ...item, state: item.state === 'failed' ? 'failed' : 'pending' });
        }
      }
    } catch { /* ignore a corrupt entry */ }
  }
}
