"""A scripted receiving MX over raw sockets, for what aiosmtpd cannot be made
to do: drop the connection after "." without replying, and count concurrent
sessions exactly (each from its connection to QUIT, or to the connection's end
when it has none)."""
import socket
import threading
import time


class ScriptedSink:
    """SMTP server on (host, port). Each received message is appended to
    `messages` as (mail_from, rcpts, data). `drop_after_dot(n)` closes the
    connection without a reply after the first n messages' final dot.
    `data_delay` seconds pass before the reply to "." (to make sessions overlap)."""

    def __init__(self, host, port=25, data_delay=0.0, pipelining=True, record_after_reply=False, refuse=None):
        self.host, self.port = host, port
        # refuse(rcpt): the reply line refusing that recipient at RCPT, or None to take it.
        self.refuse = refuse
        # Record a message only once its 250 is on the wire: a client that dies before reading the 250 then
        # shows as a duplicate only when it failed to keep what it read (the kill loop's measure of the relay).
        self.record_after_reply = record_after_reply
        self.data_delay = data_delay
        self.pipelining = pipelining
        self.messages = []
        # The client address each message came from, in the same order.
        self.sources = []
        self.connections = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.drops_left = 0
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_after_dot(self, count):
        with self.lock:
            self.drops_left = count

    def stop(self):
        self.running = False
        # shutdown wakes the thread blocked in accept(); close alone would
        # leave the socket listening until that call returns.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()

    def _accept(self):
        while self.running:
            try:
                connection, peer = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.concurrent += 1
                self.max_concurrent = max(self.max_concurrent, self.concurrent)
            threading.Thread(target=self._session, args=(connection, peer[0]), daemon=True).start()

    def _session(self, connection, peer):
        ended = threading.Event()
        try:
            self._converse(connection, peer, ended)
        except OSError:
            pass
        finally:
            self._end(ended)
            connection.close()

    def _end(self, ended):
        """A session ends once: when QUIT is read, or when the connection ends without one."""
        if not ended.is_set():
            ended.set()
            with self.lock:
                self.concurrent -= 1

    def _converse(self, connection, peer, ended):
        reader = connection.makefile("rb")

        def send(line):
            connection.sendall(line.encode() + b"\r\n")

        send("220 sink.test ESMTP")
        mail_from, rcpts = None, []
        while True:
            line = reader.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                send("250-sink.test" if self.pipelining else "250 sink.test")
                if self.pipelining:
                    send("250-8BITMIME")
                    send("250 PIPELINING")
            elif verb == "MAIL":
                mail_from, rcpts = command[10:].split(">")[0].lstrip("<"), []
                send("250 2.1.0 OK")
            elif verb == "RCPT":
                rcpt = command[8:].split(">")[0].lstrip("<")
                refusal = self.refuse(rcpt) if self.refuse else None
                if refusal:
                    send(refusal)
                    continue
                rcpts.append(rcpt)
                send("250 2.1.5 OK")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                send("250 2.0.0 OK")
            elif verb == "DATA":
                send("354 go ahead")
                data = b""
                while True:
                    chunk = reader.readline()
                    if not chunk:
                        return
                    if chunk == b".\r\n":
                        break
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                if self.record_after_reply:
                    send("250 2.0.0 queued")
                with self.lock:
                    self.messages.append((mail_from, list(rcpts), data))
                    self.sources.append(peer)
                    drop = self.drops_left > 0
                    if drop:
                        self.drops_left -= 1
                if self.record_after_reply:
                    continue
                if drop:
                    # The message arrived, but the client never hears so.
                    connection.shutdown(socket.SHUT_RDWR)
                    return
                if self.data_delay:
                    time.sleep(self.data_delay)
                send("250 2.0.0 queued")
            elif verb == "QUIT":
                # Counted as over before the reply: the client may close, and open another connection, as soon as it
                # reads the reply — before this thread gets to run again.
                self._end(ended)
                send("221 2.0.0 bye")
                return
            elif verb == "NOOP":
                send("250 2.0.0 OK")
            else:
                send("502 5.5.2 not implemented")
