#!/usr/bin/env python3
"""Opens N TLS connections to HOST:PORT, each sending a partial HTTP/1.1 header and then
nothing; reports the server's RSS (from /proc/PID/status) before, at 5 s and 15 s, and how
many connections the server still holds open."""
import asyncio, ssl, sys, time

host, port, pid, n, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    return -1

async def one(ctx, conns, refused):
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ctx, server_hostname="127.0.0.1"), 20)
        w.write(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await w.drain()
        conns.append((r, w))
    except Exception:
        refused.append(1)

async def alive(conns):
    n = 0
    for r, w in conns:
        if not r.at_eof() and not w.is_closing():
            try:
                data = await asyncio.wait_for(r.read(1), 0.001)
                if data:
                    n += 1
            except asyncio.TimeoutError:
                n += 1
            except Exception:
                pass
    return n

async def main():
    ctx = ssl.create_default_context(cafile=ca)
    print(f"rss before: {rss()} MB")
    conns, refused = [], []
    t = time.time()
    for i in range(0, n, 100):
        await asyncio.gather(*(one(ctx, conns, refused) for _ in range(min(100, n - i))))
    print(f"opened {len(conns)}, refused {len(refused)} in {time.time()-t:.1f}s; rss {rss()} MB")
    await asyncio.sleep(5)
    print(f"+5s: rss {rss()} MB, open {await alive(conns)}")
    await asyncio.sleep(10)
    print(f"+15s: rss {rss()} MB, open {await alive(conns)}")

asyncio.run(main())
