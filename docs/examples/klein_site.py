"""
A Klein application served through the tlsreload: endpoint: SIGHUP, or a
change to the files (watch=), rotates its certificate.

Usage: python klein_site.py CERTIFICATE KEY PORT
"""

import sys

from klein import Klein
from twisted.internet.endpoints import quoteStringArgument

app = Klein()


@app.route("/")
def hello(request):
    return "Hello from Klein, over TLS.\n"


certificate, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
# quoteStringArgument escapes any ":" or "\" in the file names.
app.run(
    endpoint_description=(
        f"tlsreload:{port}:certKey={quoteStringArgument(certificate)}"
        f":privateKey={quoteStringArgument(key)}:watch=30"
    )
)  # starts logging to stdout, listens, runs the reactor
