"""Forwards 127.0.0.1:9092 in this container to the course's broker.

The course's broker advertises itself as localhost:9092 (every program runs
inside its container), so a consumer in another container on the stack's
network reaches it through this forwarder, as a host of its own would
through its own listener. Cutting the container's network cuts this too.

Usage: python3 kafka_forward.py BROKER_HOST
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def handle(reader, writer):
    try:
        upstream_reader, upstream_writer = await asyncio.open_connection(sys.argv[1], 9092)
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 9092)
    await server.serve_forever()


asyncio.run(main())
