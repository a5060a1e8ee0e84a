"""An HTTP server for the tests: serves one directory (a live HLS playlist and its segments) on
127.0.0.1:PORT; with --header 'Name: value' it answers 403 to requests without that header.
Prints "ready" once it listens."""
import argparse
import functools
import http.server

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--directory", required=True)
parser.add_argument("--header")
args = parser.parse_args()
required = None
if args.header:
    name, _, value = args.header.partition(":")
    required = (name.strip(), value.strip())


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if required and self.headers.get(required[0]) != required[1]:
            self.send_error(403, "missing or wrong %s header" % required[0])
            return
        super().do_GET()

    def log_message(self, *_):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), functools.partial(Handler, directory=args.directory))
print("ready", flush=True)
server.serve_forever()
