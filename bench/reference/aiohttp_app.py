"""The fast Python peer of the original reports: aiohttp streaming each uploaded file to disk.

Written as aiohttp's documentation shows file uploads: multipart parts are read chunk by chunk
with `MultipartReader`, and a raw `PUT /files/{name}` body with `request.content.iter_chunked`
(never whole into memory), written as they come, with no hashing and no fsync.
Run: python aiohttp_app.py PORT  (UPLOAD_DIR sets where files go).
"""

import os
import sys
import uuid

from aiohttp import web

UPLOAD_DIR = os.environ.get("UPLOAD_DIR", ".")


async def upload(request: web.Request) -> web.Response:
    reader = await request.multipart()
    files = []
    while (part := await reader.next()) is not None:
        if not part.filename:
            continue
        size = 0
        with open(os.path.join(UPLOAD_DIR, uuid.uuid4().hex), "wb") as f:
            while chunk := await part.read_chunk(1 << 20):
                size += len(chunk)
                f.write(chunk)
        files.append({"filename": part.filename, "size": size})
    return web.json_response({"files": files}, status=201)


async def upload_raw(request: web.Request) -> web.Response:
    size = 0
    with open(os.path.join(UPLOAD_DIR, uuid.uuid4().hex), "wb") as f:
        async for chunk in request.content.iter_chunked(1 << 20):
            size += len(chunk)
            f.write(chunk)
    return web.json_response({"filename": request.match_info["name"], "size": size}, status=201)


app = web.Application(client_max_size=1 << 30)
app.add_routes(
    [web.post("/", upload), web.post("/files", upload), web.put("/files/{name}", upload_raw)]
)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
