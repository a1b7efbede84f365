"""Uploads a file to the service with tuspy, the tus project's own Python
client (PyPI `tuspy`), as a user of any tus server would.

    python3 tus_upload.py BASE_URL FILE [--chunk-size BYTES] [--checksum] [--store PATH]

With --store, the upload URL is kept in PATH under the file's fingerprint,
so a later run with the same PATH resumes the upload instead of starting
over (tuspy's own resumability). Prints the upload URL as soon as it is
known, then `done` once the upload is complete.
"""

import argparse
import os
import sys

from tusclient import client
from tusclient.storage import filestorage


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("file")
    parser.add_argument("--chunk-size", type=int, default=sys.maxsize)
    parser.add_argument("--checksum", action="store_true")
    parser.add_argument("--store")
    args = parser.parse_args()

    storage = filestorage.FileStorage(args.store) if args.store else None
    uploader = client.TusClient(args.base_url + "/uploads/").uploader(
        args.file,
        chunk_size=args.chunk_size,
        metadata={"filename": os.path.basename(args.file), "filetype": "application/x-test"},
        store_url=storage is not None,
        url_storage=storage,
        upload_checksum=args.checksum,
        retries=3,
        retry_delay=1,
    )
    if uploader.url is None:
        uploader.set_url(uploader.create_url())
    else:
        print(f"resuming at {uploader.offset}", flush=True)
    print(uploader.url, flush=True)
    uploader.upload()
    print("done", flush=True)


if __name__ == "__main__":
    main()
