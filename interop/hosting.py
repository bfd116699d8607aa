"""Hosting one actor class on the SDK's ActorGrpcHost until it stops serving.

Shared by app.py and runtime_app.py. Exit codes run.sh reads: 4 the host never
started (e.g. its stream was refused), 3 it stopped serving callbacks for good.
"""

import asyncio
import logging
import os
import sys

from dapr.actor.runtime.grpc_host import ActorGrpcHost

# How long start() may take before we call the start-up a failure. The SDK's
# own handshake bound is 60 s, far longer than this interop run should wait.
START_TIMEOUT_SECONDS = float(os.environ.get('INTEROP_APP_START_TIMEOUT', '20'))

log = logging.getLogger('interop.hosting')


async def serve(actor_class) -> int:
    # app_port=0: no inbound listener at all. The SDK would otherwise start an
    # empty gRPC server because daprd insists on an app channel; the gateway
    # does not, and proving that is part of the point.
    host = ActorGrpcHost(app_port=0)
    await host.register_actor(actor_class)
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


def run(name: str, main) -> None:
    """Logs to stderr as `name`, runs the coroutine function `main`, exits with its code."""
    logging.basicConfig(
        level=os.environ.get('INTEROP_LOG_LEVEL', 'INFO'),
        format=f'%(asctime)s {name}[%(process)d] %(levelname)s %(name)s: %(message)s',
        stream=sys.stderr,
    )
    sys.exit(asyncio.run(main()))
