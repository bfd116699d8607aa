"""Interop caller: drives the gateway's front door with the Dapr SDK's generated DaprStub.

Deliberately uses the SDK's *generated* stub on a plain grpc channel, not
DaprClient/ActorProxy, so every check sees the raw gRPC status codes and
metadata the gateway puts on the wire.

Usage: caller.py --addr HOST:PORT --app-id ID [--app-pid PID] [--token T] CHECK [CHECK ...]

Each check prints one line, `PASS <check>` or `FAIL <check>: <why>`; run.sh
counts those lines. The exit status is 1 if any check failed.
Every RPC carries a deadline and every retry loop is bounded, so a broken
gateway makes a check fail, never hang.
"""

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

from dapr.proto import api_service_v1, api_v1

ACTOR_TYPE = 'EchoActor'
ERROR_HEADER = 'x-daprerrorresponseheader'
RPC_TIMEOUT = 5.0  # seconds, per RPC
RUNNING = 2  # ActorRuntime.ActorRuntimeStatus.RUNNING


class CheckFailed(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def retry_until(deadline_seconds, attempt, what):
    """Calls attempt() until it returns without CheckFailed/RpcError, or the bound passes.

    Used wherever the gateway legitimately needs time to converge (an app
    registering, a dead stream being noticed); the last failure is reported.
    """
    deadline = time.monotonic() + deadline_seconds
    last = None
    while True:
        try:
            return attempt()
        except (CheckFailed, grpc.RpcError) as error:
            last = error
        if time.monotonic() >= deadline:
            raise CheckFailed(f'{what} not reached within {deadline_seconds:.0f}s; last: {describe(last)}')
        time.sleep(0.25)


def describe(error):
    if isinstance(error, grpc.RpcError):
        return f'{error.code().name}: {error.details()!r}'
    return str(error)


class Caller:
    def __init__(self, addr, app_id, app_pid, wait_seconds, token=None):
        self.channel = grpc.insecure_channel(addr)
        self.auth = [('dapr-api-token', token)] if token else None
        self.stub = api_service_v1.DaprStub(self.channel)
        self.app_id = app_id
        self.app_pid = app_pid
        self.wait_seconds = wait_seconds

    # -- helpers ---------------------------------------------------------------

    def metadata(self):
        return self.stub.GetMetadata(
            api_v1.GetMetadataRequest(), timeout=RPC_TIMEOUT, metadata=self.auth
        )

    def invoke(self, method, data=b'', actor_id='interop-1', actor_type=ACTOR_TYPE):
        request = api_v1.InvokeActorRequest(
            actor_type=actor_type, actor_id=actor_id, method=method, data=data
        )
        return self.stub.InvokeActor.with_call(request, timeout=RPC_TIMEOUT, metadata=self.auth)

    def echo_once(self, actor_id='interop-1', tag='hello'):
        """One Echo round trip; asserts the reply is our JSON plus the actor's fields."""
        sent = {'greeting': tag, 'n': 42, 'nested': {'list': [1, 2, 3], 'flag': True}}
        response, call = self.invoke('Echo', json.dumps(sent).encode(), actor_id)
        try:
            got = json.loads(response.data)
        except ValueError:
            raise CheckFailed(f'reply is not JSON: {response.data[:200]!r}')
        expected = dict(sent, echoed_by=actor_id)
        pid = got.pop('pid', None)
        expect(got == expected, f'reply {got} != expected {expected}')
        if self.app_pid is not None:
            expect(pid == self.app_pid, f'reply came from pid {pid}, expected app pid {self.app_pid}')
        headers = dict(call.initial_metadata() or ())
        expect(ERROR_HEADER not in headers, f'successful call carries {ERROR_HEADER}: {headers}')
        return got

    def registered(self):
        md = self.metadata()
        runtime = md.actor_runtime
        types = [a.type for a in runtime.active_actors]
        expect(runtime.host_ready, f'host_ready is false (active_actors={types})')
        expect(ACTOR_TYPE in types, f'{ACTOR_TYPE} not in active_actors {types}')
        return md

    # -- checks ----------------------------------------------------------------

    def check_registration(self):
        """The SDK's initial_request reached the gateway and shows up in GetMetadata."""
        md = retry_until(self.wait_seconds, self.registered, 'host_ready with EchoActor registered')
        expect(md.id == self.app_id, f'metadata id {md.id!r} != {self.app_id!r}')
        expect(md.runtime_version != '', 'runtime_version is empty')
        expect(
            md.actor_runtime.runtime_status == RUNNING,
            f'runtime_status {md.actor_runtime.runtime_status} != RUNNING',
        )

    def check_invoke(self):
        self.echo_once()

    def check_concurrent(self):
        """Many callers in flight on one stream each get exactly their own reply."""

        def one(i):
            self.echo_once(actor_id=f'interop-c{i % 4}', tag=f'call-{i}')

        with ThreadPoolExecutor(max_workers=16) as pool:
            for future in [pool.submit(one, i) for i in range(32)]:
                future.result(timeout=RPC_TIMEOUT * 2)

    def check_unknown_method(self):
        """The SDK answers an unknown method with request_failed(NOT_FOUND); the gateway keeps the code."""
        try:
            self.invoke('NoSuchMethod', b'{}')
        except grpc.RpcError as error:
            expect(
                error.code() == grpc.StatusCode.NOT_FOUND,
                f'expected NOT_FOUND, got {describe(error)}',
            )
            expect(
                'NoSuchMethod' in (error.details() or ''),
                f'status message does not carry the app message: {error.details()!r}',
            )
            return
        raise CheckFailed('call to an unknown method succeeded')

    def check_unknown_type(self):
        """A type nobody registered still reaches the app (R13 fallback); the SDK says NOT_FOUND."""
        try:
            self.invoke('Echo', b'{}', actor_type='NoSuchActor')
        except grpc.RpcError as error:
            expect(
                error.code() == grpc.StatusCode.NOT_FOUND,
                f'expected NOT_FOUND, got {describe(error)}',
            )
            expect(
                'NoSuchActor' in (error.details() or ''),
                f'status message does not carry the app message: {error.details()!r}',
            )
            return
        raise CheckFailed('call to an unregistered actor type succeeded')

    def check_app_error(self):
        """A raising actor method is an OK call with the error header and the SDK's JSON error payload."""
        response, call = self.invoke('Fail', b'')
        initial = dict(call.initial_metadata() or ())
        trailing = dict(call.trailing_metadata() or ())
        if initial.get(ERROR_HEADER) != 'true':
            where = 'trailing metadata only' if trailing.get(ERROR_HEADER) == 'true' else 'neither'
            raise CheckFailed(
                f'{ERROR_HEADER}: true expected in initial metadata, found in {where} '
                f'(initial={initial}, trailing={trailing})'
            )
        try:
            payload = json.loads(response.data)
        except ValueError:
            raise CheckFailed(f'error payload is not JSON: {response.data[:200]!r}')
        expect(
            'EchoActor.Fail was asked to fail' in str(payload.get('message')),
            f'error payload lacks the exception text: {payload}',
        )
        expect(payload.get('errorCode') == 'UNKNOWN', f'unexpected errorCode in {payload}')

    def check_app_down(self):
        """With the only app gone, the gateway says so: not ready, and UNAVAILABLE at once."""

        def gone():
            runtime = self.metadata().actor_runtime
            expect(not runtime.host_ready, 'host_ready still true')
            expect(
                not runtime.active_actors,
                f'active_actors still {[a.type for a in runtime.active_actors]}',
            )

        retry_until(self.wait_seconds, gone, 'host_ready false after the app died')
        started = time.monotonic()
        try:
            self.invoke('Echo', b'{}')
        except grpc.RpcError as error:
            expect(
                error.code() == grpc.StatusCode.UNAVAILABLE,
                f'expected UNAVAILABLE, got {describe(error)}',
            )
            expect(
                time.monotonic() - started < RPC_TIMEOUT - 1,
                'UNAVAILABLE came only after a wait, not at once',
            )
            return
        raise CheckFailed('invoke succeeded with no app connected')

    def check_reconnect(self):
        """The (re)started app re-registers and serves; retried while it reconnects."""
        retry_until(self.wait_seconds, self.registered, 'registration after reconnect')
        retry_until(self.wait_seconds, self.echo_once, 'Echo round trip after reconnect')

    def check_token_required(self):
        """With a token configured, calls without it are refused and calls with it go through."""
        expect(self.auth, 'token-required needs --token')
        for name, call in [
            ('GetMetadata', lambda: self.stub.GetMetadata(api_v1.GetMetadataRequest(), timeout=RPC_TIMEOUT)),
            ('InvokeActor', lambda: self.stub.InvokeActor(
                api_v1.InvokeActorRequest(actor_type=ACTOR_TYPE, actor_id='x', method='Echo'),
                timeout=RPC_TIMEOUT,
            )),
        ]:
            try:
                call()
            except grpc.RpcError as error:
                expect(
                    error.code() == grpc.StatusCode.UNAUTHENTICATED,
                    f'{name} without a token: expected UNAUTHENTICATED, got {describe(error)}',
                )
            else:
                raise CheckFailed(f'{name} without a token succeeded')
        md = self.metadata()  # with the token: must pass the check
        expect(md.id == self.app_id, f'metadata id {md.id!r} != {self.app_id!r}')


CHECKS = {
    'registration': Caller.check_registration,
    'invoke': Caller.check_invoke,
    'concurrent': Caller.check_concurrent,
    'unknown-method': Caller.check_unknown_method,
    'unknown-type': Caller.check_unknown_type,
    'app-error': Caller.check_app_error,
    'app-down': Caller.check_app_down,
    'reconnect': Caller.check_reconnect,
    'token-required': Caller.check_token_required,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--addr', required=True)
    parser.add_argument('--app-id', default='interop')
    parser.add_argument('--app-pid', type=int, default=None,
                        help='pid of the app process expected to answer Echo')
    parser.add_argument('--wait', type=float, default=20.0,
                        help='bound, in seconds, for each converging wait')
    parser.add_argument('--token', default=None,
                        help='dapr-api-token to attach to every call (except where a check omits it)')
    parser.add_argument('--label', default='',
                        help='suffix for the check names, to tell repeated runs apart')
    parser.add_argument('checks', nargs='+', choices=sorted(CHECKS))
    args = parser.parse_args()

    caller = Caller(args.addr, args.app_id, args.app_pid, args.wait, args.token)
    failed = 0
    for name in args.checks:
        label = f'{name}{args.label}'
        try:
            CHECKS[name](caller)
        except CheckFailed as error:
            failed += 1
            print(f'FAIL {label}: {error}', flush=True)
        except grpc.RpcError as error:
            failed += 1
            print(f'FAIL {label}: unexpected RPC error {describe(error)}', flush=True)
        except Exception as error:  # noqa: BLE001 - any surprise is a failed check, not a crash
            failed += 1
            print(f'FAIL {label}: {type(error).__name__}: {error}', flush=True)
        else:
            print(f'PASS {label}', flush=True)
    caller.channel.close()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
