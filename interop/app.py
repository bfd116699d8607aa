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

import os

from dapr.actor import Actor, ActorInterface, actormethod

import hosting


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
    return await hosting.serve(EchoActor)


if __name__ == '__main__':
    hosting.run('app', main)
