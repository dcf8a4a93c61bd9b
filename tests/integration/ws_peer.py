#!/usr/bin/python3
"""WebSocket peers for the L7 tests, on Debian's python3-websockets (run with /usr/bin/python3).

  ws_peer.py server PORT          echo server on 127.0.0.1:PORT (prints "ready")
  ws_peer.py client URL N         sends N messages, checks each echo; reads stdin lines between
                                  messages when N is followed by "--pause-after K": pauses after
                                  K messages until a line arrives on stdin. Exit 0 = all echoed.
"""
import asyncio
import sys

import websockets


async def serve(port):
    async def echo(ws, path=None):
        async for msg in ws:
            await ws.send(msg)
    async with websockets.serve(echo, "127.0.0.1", port):
        print("ready", flush=True)
        await asyncio.Future()


async def client(url, n, pause_after):
    async with websockets.connect(url, open_timeout=5, close_timeout=2) as ws:
        for i in range(n):
            if pause_after is not None and i == pause_after:
                print("paused", flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            msg = "msg-%d-" % i + "x" * (i * 1000)
            await ws.send(msg)
            got = await asyncio.wait_for(ws.recv(), 5)
            if got != msg:
                print("mismatch at %d" % i, flush=True)
                sys.exit(1)
    print("ok %d" % n, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        pause = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--pause-after" else None
        asyncio.run(asyncio.wait_for(client(sys.argv[2], int(sys.argv[3]), pause), 30))
