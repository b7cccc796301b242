"""The only module that imports the ``kubernetes`` client: a small REST layer over plain dicts.

Objects go in and come out as the API server's own JSON (camelCase dicts), the same shape the pure
builders in :mod:`.manifests` produce; no generated model classes leak out. The client library gives us
kubeconfig / in-cluster authentication, TLS and the connection pool; requests, retries and errors are
ours. Every call is blocking: callers run it in a thread (see :mod:`.watching`).

Errors become the types of :mod:`.errors` (see :func:`.rest.error_for`: 403 -> Forbidden naming the verb
and resource, 404 -> NotFound, 409 -> Conflict, ...); 429/5xx and connection failures are retried with
exponential backoff and then raised as TemporaryError / Unreachable. Paths, selectors and the RBAC the
code needs are in :mod:`.rest`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from runner.backends.kubernetes import rest
from runner.backends.kubernetes.errors import KubeError, NotFound, PermanentError, TemporaryError, Unreachable

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class Stream:
    """A streaming HTTP response (a watch or a followed log), read line by line in one thread.

    :meth:`close` may be called from another thread: it shuts the socket down so that a blocked read
    returns at once. The socket is reached through a handle of our own, taken at the start: when the
    server answers ``Connection: close``, http.client hands the socket to the response and the
    connection object no longer has it, and closing the response would then block until the read ends.
    """

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()
        self._socket: socket.socket | None = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._socket = socket.socket(fileno=os.dup(response.fileno()))

    def lines(self) -> Iterator[str]:
        buffer = bytearray()
        try:
            for chunk in self._response.stream(amt=None, decode_content=True):
                if self._closed.is_set():
                    return
                buffer.extend(chunk)
                while (newline := buffer.find(b"\n")) != -1:
                    line = buffer[:newline].decode("utf-8", errors="replace")
                    del buffer[: newline + 1]
                    yield line
            if buffer and not self._closed.is_set():
                yield buffer.decode("utf-8", errors="replace")
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as error:
            if not self._closed.is_set():
                raise Unreachable(f"the stream from the API server broke: {error}") from error
        finally:
            self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
            self._socket.close()
        try:
            self._response.close()
            self._response.release_conn()
        except Exception:  # closing must never raise, whatever state the response is in
            log.debug("closing a stream failed", exc_info=True)


class KubeApi:
    """Blocking calls to one API server. Thread-safe (urllib3's pool is)."""

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        retry_delays: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
        request_timeout: float = 30.0,
    ) -> None:
        configuration = k8s_client.Configuration()
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, context=context, client_configuration=configuration
                )
        except (k8s_config.ConfigException, OSError) as error:
            where = "the in-cluster service account" if in_cluster else (kubeconfig or "~/.kube/config")
            raise PermanentError(
                f"cannot load Kubernetes credentials from {where}: {error}; give a kubeconfig file "
                "that exists (--kubeconfig PATH or the KUBECONFIG variable), or run inside a cluster"
            ) from error
        configuration.retries = 0  # we retry ourselves, with backoff and clear errors
        self.host: str = configuration.host
        self._client = k8s_client.ApiClient(configuration)
        self.retry_delays = tuple(retry_delays)
        self.request_timeout = request_timeout

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]

    # ---- plain requests ----------------------------------------------------------------------

    def version(self) -> Obj:
        return self._json("GET", "/version", what="the server version")

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj:
        return self._json("GET", rest.path(kind, namespace, name), what=rest.what(kind, name, namespace))

    def find(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return self.get(kind, name, namespace)
        except NotFound:
            return None

    def list_objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        labels: Mapping[str, str] | str | None = None,
        fields: str | None = None,
    ) -> Obj:
        """The list object (``items`` and ``metadata.resourceVersion``); all namespaces when None."""
        query = rest.selectors(labels, fields)
        return self._json("GET", rest.path(kind, namespace), query, what=rest.what(kind, None, namespace))

    def create(self, kind: str, body: Obj, namespace: str | None = None) -> Obj:
        name = body.get("metadata", {}).get("name")
        what = rest.what(kind, name, namespace)
        return self._json("POST", rest.path(kind, namespace), body=body, what=what)

    def replace(self, kind: str, name: str, body: Obj, namespace: str | None = None) -> Obj:
        path = rest.path(kind, namespace, name)
        return self._json("PUT", path, body=body, what=rest.what(kind, name, namespace))

    def merge_patch(self, kind: str, name: str, patch: Obj, namespace: str | None = None) -> Obj:
        return self._json(
            "PATCH",
            rest.path(kind, namespace, name),
            body=patch,
            content_type="application/merge-patch+json",
            what=rest.what(kind, name, namespace),
        )

    def json_patch(self, kind: str, name: str, ops: list[Obj], namespace: str | None = None) -> Obj:
        return self._json(
            "PATCH",
            rest.path(kind, namespace, name),
            body=ops,
            content_type="application/json-patch+json",
            what=rest.what(kind, name, namespace),
        )

    def delete(
        self, kind: str, name: str, namespace: str | None = None, *, propagation: str = "Background"
    ) -> bool:
        """Deletes the object and its dependents; False when it was already gone."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        try:
            self._json(
                "DELETE", rest.path(kind, namespace, name), body=body, what=rest.what(kind, name, namespace)
            )
        except NotFound:
            return False
        return True

    def read_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        previous: bool = False,
        tail_lines: int | None = None,
    ) -> str:
        query: list[tuple[str, str]] = []
        if container:
            query.append(("container", container))
        if previous:
            query.append(("previous", "true"))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        path = rest.path("Pod", namespace, pod) + "/log"
        response = self._request("GET", path, query, what=f"the log of pod {namespace}/{pod}")
        return bytes(response.data).decode("utf-8", errors="replace")

    def service_proxy(
        self,
        method: str,
        namespace: str,
        service: str,
        port: int,
        path: str = "",
        *,
        json_body: Any = None,
        timeout: float = 30.0,
    ) -> tuple[int, bytes]:
        """Sends a request to a Service through the API server's proxy; the answer's status and body.

        A status the service itself answers (even 4xx/5xx) is returned, not raised; 503 (no ready
        endpoint) is returned too, so callers can wait for readiness.
        """
        resource = f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy/{path.lstrip('/')}"
        headers = {"Accept": "*/*", "Content-Type": "application/json"}
        try:
            request = self._client.param_serialize(
                method=method,
                resource_path=resource,
                header_params=headers,
                body=json_body,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(*request, _request_timeout=(timeout, timeout)).response
            data = bytes(response.data or b"")
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            raise self._connection_error(error, str(error)) from error
        if response.status == 403:
            what = f"services/proxy {service} in namespace {namespace}"
            raise rest.error_for(method, resource, what, 403, "")
        return int(response.status), data

    # ---- streams ---------------------------------------------------------------------------

    def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        labels: Mapping[str, str] | str | None = None,
        fields: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int = 60,
    ) -> Stream:
        """A watch from `resource_version`; iterate ``lines()`` and parse each with :func:`parse_event`."""
        query = rest.selectors(labels, fields)
        query += [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        if resource_version:
            query.append(("resourceVersion", resource_version))
        response = self._request(
            "GET",
            rest.path(kind, namespace),
            query,
            stream=True,
            timeout=(self.request_timeout, timeout_seconds + 15),
            what=rest.what(kind, None, namespace),
        )
        return Stream(response)

    def follow_log(self, namespace: str, pod: str, *, container: str | None = None) -> Stream:
        """The pod's log from its start, followed live until the container ends."""
        query = [("follow", "true")]
        if container:
            query.append(("container", container))
        path = rest.path("Pod", namespace, pod) + "/log"
        response = self._request(
            "GET",
            path,
            query,
            stream=True,
            timeout=(self.request_timeout, None),
            what=f"the log of pod {namespace}/{pod}",
        )
        return Stream(response)

    # ---- internals -------------------------------------------------------------------------

    def _connection_error(self, error: BaseException, text: str) -> KubeError:
        if _is_tls_failure(error):  # retrying cannot fix a certificate that does not match
            return PermanentError(
                f"the TLS connection to the Kubernetes API server at {self.host} failed ({text}); the "
                "kubeconfig's certificate authority does not match the server: get a fresh kubeconfig"
            )
        return Unreachable(f"cannot reach the Kubernetes API server at {self.host}: {text}")

    def _json(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        body: Any = None,
        content_type: str = "application/json",
        what: str,
    ) -> Obj:
        response = self._request(method, path, query, body=body, content_type=content_type, what=what)
        data = response.data
        result: Obj = json.loads(data) if data else {}
        return result

    def _request(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        *,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: Any = None,
        what: str,
    ) -> Any:
        """The urllib3 response of a successful request; retries temporary failures with backoff."""
        delays = iter(self.retry_delays)
        while True:
            try:
                return self._request_once(method, path, query, body, content_type, stream, timeout, what)
            except TemporaryError as error:
                delay = next(delays, None)
                if delay is None:
                    if isinstance(error, Unreachable):
                        raise Unreachable(
                            f"{error} (gave up after {len(self.retry_delays) + 1} attempts); check that "
                            "the cluster is running and that the kubeconfig points at it",
                            status=error.status,
                        ) from error
                    raise
                wait = max(delay, error.delay if error.status == 429 else 0.0)
                log.debug("%s %s failed (%s); retrying in %.1f s", method, path, error, wait)
                time.sleep(wait)

    def _request_once(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None,
        body: Any,
        content_type: str,
        stream: bool,
        timeout: Any,
        what: str,
    ) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            request = self._client.param_serialize(
                method=method,
                resource_path=path,
                query_params=query or None,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self._client.call_api(
                *request, _request_timeout=timeout or (self.request_timeout, self.request_timeout)
            ).response
        except ApiException as error:  # TLS failures come out of the client this way
            raise self._connection_error(error, str(error.reason)) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise self._connection_error(error, str(error)) from error
        if 200 <= response.status <= 299:
            if not stream:
                _ = response.data  # read the whole body now (and keep it: `.data` caches it)
            return response
        try:
            payload = bytes(response.data or b"").decode("utf-8", errors="replace")
        finally:
            response.release_conn()
        retry_after = response.headers.get("Retry-After")
        raise rest.error_for(method, path, what, response.status, payload, retry_after)


def _is_tls_failure(error: BaseException) -> bool:
    reason = getattr(error, "reason", None)
    return (
        isinstance(error, urllib3.exceptions.SSLError | ssl.SSLError)
        or isinstance(reason, urllib3.exceptions.SSLError | ssl.SSLError)
        or "CERTIFICATE_VERIFY_FAILED" in str(reason or error)
    )
