#!/bin/sh
# certbot deploy hook: check the renewed files exactly as a reload would,
# and only then tell the server to reload them.
#
# Install as /etc/letsencrypt/renewal-hooks/deploy/txtlsreload.sh, or run
#   certbot renew --deploy-hook /path/to/certbot-deploy-hook.sh
# certbot sets RENEWED_LINEAGE to the renewed certificate's live directory.
set -eu

python=${TXTLSRELOAD_PYTHON:-/opt/myservice/venv/bin/python}
pidfile=${TXTLSRELOAD_PIDFILE:-/run/myservice.pid}

# Exit 1 (and certbot reports the hook's failure) if a reload would refuse
# the files; the server keeps serving its current certificate either way.
"$python" -m txtlsreload check \
    --cert "$RENEWED_LINEAGE/fullchain.pem" \
    --key "$RENEWED_LINEAGE/privkey.pem"

kill -HUP "$(cat "$pidfile")"
