"""
A Klein app over TLS whose certificate reloads on SIGHUP and on change.

Usage: python klein_app.py CERTIFICATE KEY PORT
"""

import sys

from klein import Klein
from twisted.internet.endpoints import quoteStringArgument

app = Klein()


@app.route("/")
def hello(request):
    return "Hello from Klein over TLS.\n"


certificate, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app.run(
    endpoint_description=(
        f"tlsreload:{port}:privateKey={quoteStringArgument(key)}"
        f":certKey={quoteStringArgument(certificate)}:watch=5"
    )
)
