"""Interop HTTP checks: the Python SDK's ActorProxy (daprd's HTTP actor API) against the gateway.

The SDK's actor client talks HTTP to the sidecar (`DAPR_HTTP_PORT`, set by run.sh to the
gateway's --http-listen port); the actors it calls are the Python SDK apps hosted over the
actor stream (app.py's EchoActor, runtime_app.py's CounterActor). Each check prints
`PASS http/<check>` or `FAIL http/<check>: <why>`. Every call has a deadline.

Usage: proxy_caller.py CHECK [CHECK ...]
  invoke          ActorProxy -> EchoActor.Echo: the app's JSON reply comes back
  unknown-method  a method the actor lacks: DaprHttpError 404 ERR_ACTOR_INVOKE_METHOD
  app-error       EchoActor.Fail raises: 200 with X-Daprerrorresponseheader, the SDK's
                  error payload as the body (the SDK ignores the header)
  state           CounterActor.Increment twice (the app's state round trip through the
                  gateway), then the SDK's HTTP client writes and reads actor state itself
"""

import asyncio
import json
import os
import sys
import uuid

import aiohttp
from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprHttpError
from dapr.clients.http.dapr_actor_http_client import DaprActorHttpClient
from dapr.serializers import DefaultJSONSerializer

TIMEOUT = 30
ERROR_HEADER = 'X-Daprerrorresponseheader'


class CheckFailed(Exception):
    pass


def expect(condition, why):
    if not condition:
        raise CheckFailed(why)


def base_url():
    return f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0"


async def check_invoke():
    proxy = ActorProxy.create('EchoActor', ActorId('http-1'))
    sent = {'greeting': 'over http', 'n': 7}
    raw = await asyncio.wait_for(proxy.invoke_method('Echo', json.dumps(sent).encode()), TIMEOUT)
    got = json.loads(raw)
    got.pop('pid', None)
    expected = dict(sent, echoed_by='http-1')
    expect(got == expected, f'reply {got} != expected {expected}')


async def check_unknown_method():
    proxy = ActorProxy.create('EchoActor', ActorId('http-1'))
    try:
        await asyncio.wait_for(proxy.invoke_method('NoSuchMethod', b'{}'), TIMEOUT)
    except DaprHttpError as error:
        expect(error.status_code == 404, f'status {error.status_code}, expected 404 ({error})')
        expect(
            error.error_code == 'ERR_ACTOR_INVOKE_METHOD',
            f'errorCode {error.error_code}, expected ERR_ACTOR_INVOKE_METHOD',
        )
        expect('NoSuchMethod' in (error.message or ''), f'message lacks the method: {error.message!r}')
        return
    raise CheckFailed('a call to a missing method succeeded')


async def check_app_error():
    proxy = ActorProxy.create('EchoActor', ActorId('http-1'))
    raw = await asyncio.wait_for(proxy.invoke_method('Fail', b''), TIMEOUT)
    payload = json.loads(raw)
    expect(
        'EchoActor.Fail was asked to fail' in str(payload.get('message')),
        f'the SDK did not get the error payload: {payload}',
    )
    # What the SDK ignores, a plain client sees: the error header on a 200.
    url = f'{base_url()}/actors/EchoActor/http-1/method/Fail'
    async with aiohttp.ClientSession() as session:
        async with session.post(url, timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as response:
            expect(response.status == 200, f'status {response.status}, expected 200')
            expect(
                response.headers.get(ERROR_HEADER) == 'true',
                f'{ERROR_HEADER} missing: {dict(response.headers)}',
            )


async def check_state():
    actor_id = f'http-{uuid.uuid4().hex[:8]}'
    proxy = ActorProxy.create('CounterActor', ActorId(actor_id))
    counts = [json.loads(await asyncio.wait_for(proxy.invoke_method('Increment'), TIMEOUT)) for _ in range(2)]
    expect(counts == [1, 2], f'Increment twice gave {counts}, expected [1, 2]')
    # The SDK's HTTP client on the same (now active) actor: a transaction, then a read.
    client = DaprActorHttpClient(DefaultJSONSerializer(), timeout=TIMEOUT)
    ops = [{'operation': 'upsert', 'request': {'key': 'http-key', 'value': {'b': 2, 'a': 1}}}]
    await client.save_state_transactionally('CounterActor', actor_id, json.dumps(ops).encode())
    value = await client.get_state('CounterActor', actor_id, 'http-key')
    expect(value == b'{"a":1,"b":2}', f'read back {value!r}, expected the value as Go writes it')
    # The counter the app stored over gRPC reads back over HTTP as its JSON.
    counter = await client.get_state('CounterActor', actor_id, 'counter')
    expect(counter == b'2', f'counter read back over HTTP as {counter!r}, expected b"2"')


CHECKS = {
    'invoke': check_invoke,
    'unknown-method': check_unknown_method,
    'app-error': check_app_error,
    'state': check_state,
}


async def main(names):
    failed = 0
    for name in names:
        try:
            await CHECKS[name]()
            print(f'PASS http/{name}', flush=True)
        except Exception as error:  # a check's failure, whatever raised it
            failed += 1
            print(f'FAIL http/{name}: {type(error).__name__}: {error}', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(asyncio.run(main(sys.argv[1:])))
