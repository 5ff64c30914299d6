#!/usr/bin/env bash
# Warden as the client of the official MCP conformance suite
# (`npx @modelcontextprotocol/conformance client --command tests/conformance/client.sh …`).
#
# The suite's client contract: the MCP server's URL is the last argument;
# MCP_CONFORMANCE_SCENARIO names the scenario and MCP_CONFORMANCE_CONTEXT (JSON) carries
# what a real user would have been given beforehand (a client_id and client_secret, or a
# private key, for the client-credentials scenarios; an identity provider and the user's ID
# token there, for enterprise-managed authorization); exit 0 means the client did its job.
# Without credentials in the context Warden logs in headless and registers itself.
#
# This script only maps that onto ordinary `warden` commands and flags, the ones a user
# types: `warden tools --url URL [--client-id ID --client-secret-env VAR | --client-key PEM]`,
# then `warden call --url URL TOOL` for the first tool listed. It never looks at the
# scenario's name: it branches only on what the context contains.
#
# WARDEN_BIN: the warden binary (default: `warden` on PATH). NODE: a Node.js to read the
# context JSON with (default: `node`).
set -euo pipefail

url="${!#}"
warden="${WARDEN_BIN:-warden}"
node="${NODE:-node}"
state="$(mktemp -d)"
trap 'rm -rf "$state"' EXIT

# One field of the context, or nothing.
ctx() {
    CONTEXT="${MCP_CONFORMANCE_CONTEXT:-"{}"}" "$node" -e '
        const c = JSON.parse(process.env.CONTEXT);
        const v = c[process.argv[1]];
        if (typeof v === "string") process.stdout.write(v);' "$1"
}

flags=(--url "$url")
client_id="$(ctx client_id)"
if [[ -n "$client_id" ]]; then
    flags+=(--client-id "$client_id")
    secret="$(ctx client_secret)"
    if [[ -n "$secret" ]]; then
        # Through the environment, as a user would: never on a command line.
        export WARDEN_CONFORMANCE_CLIENT_SECRET="$secret"
        flags+=(--client-secret-env WARDEN_CONFORMANCE_CLIENT_SECRET)
    fi
    pem="$(ctx private_key_pem)"
    if [[ -n "$pem" ]]; then
        (umask 077 && printf '%s\n' "$pem" >"$state/client-key.pem")
        flags+=(--client-key "$state/client-key.pem")
    fi
    # Enterprise-managed authorization: the user's ID token from their identity provider
    # (through the environment, like the secret) and where to exchange it.
    idp_token_endpoint="$(ctx idp_token_endpoint)"
    if [[ -n "$idp_token_endpoint" ]]; then
        export WARDEN_CONFORMANCE_ID_TOKEN="$(ctx idp_id_token)"
        flags+=(--idp-token-endpoint "$idp_token_endpoint" --idp-client-id "$(ctx idp_client_id)")
        flags+=(--id-token-env WARDEN_CONFORMANCE_ID_TOKEN)
    fi
fi

# No client credentials given: log in (authorization code + PKCE) the way a user in CI
# would, without a browser (the suite's authorization servers approve without a user);
# and let a server that asks for more scopes get them (step-up), as a user who wants the
# call to go through would.
#
# Without credentials Warden is a public client, and it has a client ID metadata document
# (the URL it would publish it at is its client_id where an authorization server takes
# them; elsewhere it registers). The suite's clients share one such URL, which its
# authorization servers compare and never fetch.
if [[ -z "$client_id" ]]; then
    flags+=(--auth headless --client-id-metadata-url https://conformance-test.local/client-metadata.json)
fi
flags+=(--step-up auto)

# List the tools (connects, authorizes, initializes), then call the first one with no
# arguments: a tool call is where a server asks for more scopes (step-up). --yes: the
# suite's tools are test fixtures, and a headless run has nobody to confirm.
"$warden" --state-dir "$state" tools "${flags[@]}" --json >"$state/tools.json"
tool="$("$node" -e '
    const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    if (t.length) process.stdout.write(t[0].tool);' "$state/tools.json")"
if [[ -n "$tool" ]]; then
    "$warden" --state-dir "$state" call "${flags[@]}" --yes "$tool" '{}'
fi
