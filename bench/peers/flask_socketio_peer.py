"""Peer 2: Flask-SocketIO, the Flask-world answer.

Async mode: gevent with gevent-websocket (`socketio.run` then serves with gevent's
pywsgi WSGIServer and the WebSocketHandler). That is the mode Flask-SocketIO's docs
recommend for production throughput: eventlet is deprecated upstream and `threading`
spends one OS thread per client. One process, one core, like the other Python peers.

The client protocol is Socket.IO (Engine.IO v4 over a websocket): the client emits
`send` with the same object chatapp takes; every client gets a `message` event with
the same object chatapp sends, encoded once by python-socketio for the whole room.

    python -m bench.peers.flask_socketio_peer --port 8102
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402

from flask import Flask  # noqa: E402
from flask_socketio import SocketIO, emit, join_room  # noqa: E402

from bench.peers.common import Room  # noqa: E402

app = Flask(__name__)
socketio = SocketIO(
    app,
    async_mode="gevent",
    cors_allowed_origins="*",
    logger=False,
    engineio_logger=False,
    max_http_buffer_size=65536,
)
ROOM = Room()


@app.get("/")
def index():
    return "flask-socketio chat"


@socketio.on("connect")
def on_connect(auth=None):
    join_room("general")
    emit("hello", {"type": "hello"})


@socketio.on("send")
def on_send(frame):
    if isinstance(frame, dict):
        socketio.emit("message", ROOM.make_event(frame), to="general")


@socketio.on("ping_")
def on_ping(frame=None):
    emit("pong", {"type": "pong"})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8102)
    port = p.parse_args().port
    socketio.run(app, host="127.0.0.1", port=port, log_output=False)
