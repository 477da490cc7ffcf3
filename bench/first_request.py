"""Loopback HTTP listener for make bench: writes the time of the first
request (time.time(), as `date +%s.%N`) to the file given, answers 503."""
import http.server
import sys
import time

port, out = int(sys.argv[1]), sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    def handle_one_request(self):
        # Timestamp on the first bytes of the request, before parsing.
        if not getattr(Handler, "seen", False):
            Handler.seen = True
            with open(out, "w") as f:
                f.write(f"{time.time():.3f}\n")
        super().handle_one_request()

    def do_GET(self):
        self.send_error(503, "bench listener")

    do_POST = do_GET

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
