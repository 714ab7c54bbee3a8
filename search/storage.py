"""Where a search's files live: a local folder, or a cloud URI such as
`s3://bucket/results?scheme=http&endpoint_override=host:port`, read and written through pyarrow.fs, the layer
Ray Tune syncs its trials with.

A URI keeps its query (the endpoint and the like) at the end: `child` adds a path before it. Credentials and
the endpoint may instead come from the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL, AWS_DEFAULT_REGION), which pyarrow's S3 filesystem reads.
"""
from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pyarrow
import pyarrow.fs as pafs

from core.errors import RecsysError


class StorageError(RecsysError):
    """A storage URI that cannot be used: malformed, a missing bucket, refused credentials, no endpoint."""


def is_uri(location: str | Path) -> bool:
    return "://" in str(location)


def child(location: str, *parts: str) -> str:
    """location/part/...; for a URI, the parts go into its path, before any query."""
    if not is_uri(location):
        return str(Path(location, *parts))
    scheme, netloc, path, query, fragment = urlsplit(location)
    path = "/".join([path.rstrip("/"), *(p.strip("/") for p in parts)])
    return urlunsplit((scheme, netloc, path, query, fragment))


def last_part(location: str) -> str:
    """The last path segment of a folder or URI (a search's name)."""
    if not is_uri(location):
        return Path(location).name
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem for `uri` and the path on it (the bucket first), as Ray resolves them."""
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pyarrow.ArrowInvalid, ValueError) as err:
        raise StorageError(f"storage {uri!r} is not a usable URI: {first_line(err)} (expected e.g. "
                           "s3://bucket/results, optionally ?endpoint_override=host:port&scheme=http)") from None


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def explain(uri: str, err: OSError) -> StorageError:
    """One line for a failed request to the object store: what went wrong and what to check."""
    text = str(err)
    if "NETWORK_CONNECTION" in text or "curlCode" in text:
        return StorageError(f"cannot reach the object store of {uri} ({first_line(err)}); check the endpoint "
                            "(endpoint_override=host:port in the URI, or AWS_ENDPOINT_URL) and that it runs")
    denied = ("ACCESS_DENIED", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden",
              "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "AccessDenied")
    if any(word in text for word in denied):
        return StorageError(f"the object store refused the credentials for {uri} ({first_line(err)}); check "
                            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and the bucket's "
                            "permissions")
    return StorageError(f"cannot use storage {uri}: {first_line(err)}")


def endpoint_of(uri: str) -> tuple[str, int] | None:
    """host and port of an S3 URI's endpoint when one is given (endpoint_override=, else AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL); None for the provider's own."""
    parts = urlsplit(uri)
    if parts.scheme != "s3":
        return None
    override = parse_qs(parts.query).get("endpoint_override", [""])[0]
    endpoint = override or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    address = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    scheme = address.scheme or parse_qs(parts.query).get("scheme", ["https"])[0]
    return address.hostname or "", address.port or (443 if scheme == "https" else 80)


def probe_endpoint(uri: str, timeout_s: float = 10.0) -> None:
    """A TCP connection to the URI's endpoint: refused or silent is one line at once (pyarrow would retry)."""
    endpoint = endpoint_of(uri)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=timeout_s).close()
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__).lower()
        raise StorageError(f"cannot reach the object store of {uri} ({endpoint[0]}:{endpoint[1]}: {reason}); check "
                           "the endpoint (endpoint_override=host:port in the URI, or AWS_ENDPOINT_URL) and that it "
                           "runs") from None


def check_storage(uri: str) -> None:
    """Fail in one line, before anything is written, when the URI's bucket is missing, the credentials are
    refused or the endpoint is unreachable."""
    fs, path = filesystem(uri)
    probe_endpoint(uri)
    bucket = path.split("/", 1)[0]
    try:
        info = fs.get_file_info(bucket)
    except OSError as err:
        raise explain(uri, err) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"the bucket {bucket!r} of {uri} does not exist; create it first "
                           f"(e.g. aws s3 mb s3://{bucket}) or give another --storage")


def exists(uri: str) -> bool:
    """Whether a file or folder exists at uri."""
    fs, path = filesystem(uri)
    try:
        return fs.get_file_info(path).type != pafs.FileType.NotFound
    except OSError as err:
        raise explain(uri, err) from None


def upload_files(folder: Path, uri: str) -> list[str]:
    """Copy the files directly in `folder` (not its subfolders, not hidden ones) to uri/; returns their names."""
    fs, path = filesystem(uri)
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    try:
        for name in names:
            pafs.copy_files(str(folder / name), f"{path}/{name}", destination_filesystem=fs)
    except OSError as err:
        raise explain(uri, err) from None
    return names


def upload_folder(folder: Path, uri: str) -> None:
    """Copy `folder` and everything under it to uri/."""
    fs, path = filesystem(uri)
    try:
        pafs.copy_files(str(folder), path, destination_filesystem=fs)
    except OSError as err:
        raise explain(uri, err) from None


# Ray Tune's own files at the top of an experiment folder: never fetched into, nor copied back from, our reports
RAY_EXPERIMENT_FILES = ("experiment_state-", "search_gen_state-", "searcher-state-", "basic-variant-state-",
                        "tuner.pkl")


def publish_reports(folder: str | Path, storage: str, name: str) -> str | None:
    """With a URI storage: copy our report files (search.yaml, trials.csv, summary.md, best_config.yaml, plots)
    from the local folder to <storage>/<name>/, beside Ray's experiment; returns that URI (None: local storage)."""
    if not is_uri(storage):
        return None
    uri = child(storage, name)
    upload_files(Path(folder), uri)
    return uri


def fetch_reports(uri: str, folder: Path) -> list[str]:
    """Our report files at uri/ (a search's folder in the bucket) into a local folder, Ray's state left there."""
    fs, path = filesystem(uri)
    try:
        listing = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as err:
        raise explain(uri, err) from None
    names = sorted(info.base_name for info in listing if info.type == pafs.FileType.File
                   and not info.base_name.startswith((".", *RAY_EXPERIMENT_FILES)))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            pafs.copy_files(f"{path}/{name}", str(folder / name), source_filesystem=fs)
    except OSError as err:
        raise explain(uri, err) from None
    return names


def newest_folder_with(uri: str, filename: str) -> str | None:
    """The URI of the folder directly under uri whose `filename` was written last (None: no such folder)."""
    fs, path = filesystem(uri)
    try:
        folders = [info for info in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
                   if info.type == pafs.FileType.Directory]
        files = fs.get_file_info([f"{info.path}/{filename}" for info in folders])
    except OSError as err:
        raise explain(uri, err) from None
    found = [(file.mtime, folder.base_name) for folder, file in zip(folders, files) if file.type == pafs.FileType.File]
    return child(uri, max(found)[1]) if found else None


def local_copy(location: str | Path, what: str = "model folder") -> Path:
    """A local path for a folder (or file) that may live at a URI: a URI is downloaded into a temporary folder
    removed when the process exits."""
    if not is_uri(location):
        return Path(location)
    uri = str(location)
    fs, path = filesystem(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise StorageError(f"no {what} at {uri}")
        copy = Path(tempfile.mkdtemp(prefix="seqrec-"))
        atexit.register(shutil.rmtree, copy, ignore_errors=True)
        target = copy / info.base_name if info.type == pafs.FileType.File else copy
        pafs.copy_files(path, str(target), source_filesystem=fs)
    except OSError as err:
        raise explain(uri, err) from None
    return target
