"""The generator's ceiling: a minimal HTTP/1.1 server on a bare asyncio protocol (uvloop).

It parses just enough (head, Content-Length body) to answer each request with a fixed 200, so
its row in the table is the most the load generator can push through one connection set on
this machine. A server row close to it would mean the generator, not the server, is the limit.
"""

import asyncio
import os

import uvloop

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n" + b'{"status":"ok"}'


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(RESPONSE)


async def main() -> None:
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", int(os.environ["BENCH_PORT"]))
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main())
