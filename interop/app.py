"""Interop actor app: an unmodified Dapr Python SDK ActorGrpcHost pointed at callbackstream.

The app opens no port of its own (app_port=0): it dials the gateway, opens
SubscribeActorEventsAlpha1, registers EchoActor and serves callbacks on that
stream. The gateway address comes from the SDK's own settings resolution
(DAPR_GRPC_ENDPOINT, else DAPR_RUNTIME_HOST:DAPR_GRPC_PORT), exactly as an app
started by `dapr run` would find daprd; run.sh sets those variables.

Exit codes tell run.sh *why* the app ended, because "the SDK quietly stopped
serving" is an interop failure we want to see, not a silent hang:
  0  never (the app is meant to run until killed)
  3  the host stopped serving for good (the SDK does this when the stream
     ends with CANCELLED, or when reconnecting gave up)
  4  start-up failed (no registration acknowledged within the bound)
"""

import asyncio
import logging
import os
import sys

from dapr.actor import Actor, ActorInterface, actormethod
from dapr.actor.runtime.grpc_host import ActorGrpcHost

# How long start() may take before we call the start-up a failure. The SDK's
# own handshake bound is 60 s, far longer than this interop run should wait.
START_TIMEOUT_SECONDS = float(os.environ.get('INTEROP_APP_START_TIMEOUT', '20'))

log = logging.getLogger('interop.app')


class EchoActorInterface(ActorInterface):
    @actormethod(name='Echo')
    async def echo(self, data: dict) -> dict: ...

    @actormethod(name='Fail')
    async def fail(self) -> None: ...


class EchoActor(Actor, EchoActorInterface):
    async def echo(self, data: dict) -> dict:
        # Echo the caller's object and add fields the caller can only know if
        # the call really reached this actor instance in this process
        # (the pid is how the caller tells a restarted app from the old one).
        reply = dict(data)
        reply['echoed_by'] = self.id.id
        reply['pid'] = os.getpid()
        return reply

    async def fail(self) -> None:
        # An application error: the SDK must turn it into an invoke_response
        # with error=true and a JSON error payload, not a request_failed.
        raise RuntimeError('EchoActor.Fail was asked to fail')


async def main() -> int:
    # app_port=0: no inbound listener at all. The SDK would otherwise start an
    # empty gRPC server because daprd insists on an app channel; the gateway
    # does not, and proving that is part of the point.
    host = ActorGrpcHost(app_port=0)
    await host.register_actor(EchoActor)
    try:
        await asyncio.wait_for(host.start(), START_TIMEOUT_SECONDS)
    except Exception as error:  # noqa: BLE001 - any start-up failure is fatal here
        log.error('actor host failed to start: %r', error)
        await host.close()
        return 4
    print(f'APP READY pid={os.getpid()}', flush=True)

    # start() leaves a background task that serves and reconnects. Waiting on
    # it (rather than sleeping forever) means that if the SDK gives up, the
    # process exits and run.sh can see it.
    run_task = host._run_task  # the SDK exposes no public handle for this
    try:
        if run_task is not None:
            await asyncio.shield(run_task)
    except Exception as error:  # noqa: BLE001
        log.error('actor host serving task failed: %r', error)
    finally:
        await host.close()
    log.error('actor host stopped serving callbacks for good')
    return 3


if __name__ == '__main__':
    logging.basicConfig(
        level=os.environ.get('INTEROP_LOG_LEVEL', 'INFO'),
        format='%(asctime)s app[%(process)d] %(levelname)s %(name)s: %(message)s',
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(main()))
