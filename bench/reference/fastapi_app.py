"""The FastAPI server of the original reports, as a reference for the benchmarks.

Kept as the complaints wrote it (whole file read into memory, `random.randint(0, 5000)_{filename}`,
a blocking sleep in a sync endpoint, fib on the request path), with the X-Process-Time middleware.
Run: uvicorn fastapi_app:app --port PORT  (from this directory; UPLOAD_DIR sets where files go).
"""

import asyncio
import os
import random
import time

from fastapi import FastAPI, File, Request, UploadFile

app = FastAPI()
UPLOAD_DIR = os.environ.get("UPLOAD_DIR", ".")


@app.middleware("http")
async def add_process_time_header(request: Request, call_next):
    start = time.time()
    response = await call_next(request)
    response.headers["X-Process-Time"] = str(time.time() - start)
    return response


@app.post("/")
async def upload(file: UploadFile = File(...)):
    contents = await file.read()
    with open(os.path.join(UPLOAD_DIR, f"{random.randint(0, 5000)}_{file.filename}"), "wb") as f:
        f.write(contents)
    return {"filename": file.filename}


@app.get("/wait")
def wait(duration: float = 0.05):
    time.sleep(duration)
    return {"duration": duration}


@app.get("/asyncwait")
async def asyncwait(duration: float = 0.05):
    await asyncio.sleep(duration)
    return {"duration": duration}


def fib(n: int) -> int:
    return 1 if n < 2 else fib(n - 1) + fib(n - 2)


@app.get("/fib/{n}")
def fib_endpoint(n: int):
    return {"n": n, "fib": fib(n)}
