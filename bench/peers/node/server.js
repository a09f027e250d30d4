// Peer 3: Node's `ws` broadcast server. Same work as the other peers: parse the
// `send` frame, build one `message` event, JSON-encode it once, send it to every client.
// Usage: node server.js PORT
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = parseInt(process.argv[2] || '8103', 10);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false,
  maxPayload: 65536, backlog: 1024 });
let seq = 0;
let nextId = 0;

wss.on('connection', (ws) => {
  ws.send('{"type":"hello"}');
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    let frame;
    try { frame = JSON.parse(data); } catch (e) { return; }
    if (!frame || typeof frame !== 'object') return;
    if (frame.type === 'send') {
      seq += 1; nextId += 1;
      const message = { id: nextId, room: 'general', seq, author: 'bench',
        body: typeof frame.body === 'string' ? frame.body : '',
        created_at: new Date().toISOString(), nonce: frame.nonce ?? null, edited_at: null };
      const out = JSON.stringify({ type: 'message', room: 'general', seq, message });
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(out);
      }
    } else if (frame.type === 'ping') {
      ws.send('{"type":"pong"}');
    }
  });
});

process.on('SIGTERM', () => { wss.close(); process.exit(0); });
