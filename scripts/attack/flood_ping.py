#!/usr/bin/env python3
"""Median MCP `ping` latency (HTTP/1.1 keep-alive, TLS) at rest and during a flood of
wrong-secret /token requests from THREADS threads, each from its own 127.0.0.x address.
Usage: flood_ping.py ISSUER_PORT MCP_PORT CA_PEM THREADS SECONDS"""
import base64, http.client, json, ssl, statistics, sys, threading, time, collections

iport, mport, ca, threads, secs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)

def conn(port, src="127.0.0.1"):
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, source_address=(src, 0), timeout=30)

def token_req(c, secret):
    auth = base64.b64encode(f"support-agent:{secret}".encode()).decode()
    c.request("POST", "/token", body="grant_type=client_credentials",
              headers={"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); body = r.read(); return r.status, body

c = conn(iport)
st, body = token_req(c, "demo-support-agent-secret-4f9c2e")
tok = json.loads(body)["access_token"]
mc = conn(mport)
def ping():
    t = time.perf_counter()
    mc.request("POST", "/mcp", body='{"jsonrpc":"2.0","id":1,"method":"ping"}',
               headers={"Authorization": "Bearer " + tok, "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"})
    r = mc.getresponse(); r.read(); assert r.status == 200, r.status
    return (time.perf_counter() - t) * 1000
for _ in range(20): ping()
rest = [ping() for _ in range(200)]
stop = time.time() + secs
counts = collections.Counter()
def flood(i):
    fc = conn(iport, f"127.0.0.{10 + i}")
    while time.time() < stop:
        try:
            st, _ = token_req(fc, "wrong-secret")
            counts[st] += 1
        except Exception as e:
            counts[type(e).__name__] += 1
            fc = conn(iport, f"127.0.0.{10 + i}")
ts = [threading.Thread(target=flood, args=(i,)) for i in range(threads)]
for t in ts: t.start()
time.sleep(0.5)
during = []
while time.time() < stop - 0.2:
    during.append(ping())
for t in ts: t.join()
n = sum(counts.values())
print(f"ping median at rest {statistics.median(rest):.2f} ms; during flood {statistics.median(during):.2f} ms "
      f"(p95 {sorted(during)[int(len(during)*0.95)]:.2f} ms, {len(during)} pings); "
      f"flood {n} requests in {secs:.0f} s = {n/secs:.0f}/s: {dict(counts)}")
