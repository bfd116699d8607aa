"""Interop runtime app: an unmodified SDK ActorGrpcHost whose actor leans on the gateway's runtime.

EchoActor (app.py) only needs the gateway to relay calls. CounterActor here
needs everything daprd's actor runtime gives an SDK app: turns per actor,
actor state (through the SDK's own state manager, i.e. GetActorState and
ExecuteActorStateTransaction), idle deactivation, timers and reminders.
runtime_caller.py drives it from outside and judges what it records.

What the actor records, so the caller can judge it without trusting the app:
  state 'counter'         int, +1 per Increment (read, +1, saved by the SDK after the turn)
  state 'timer_fires'     list of {at, data} per timer fire (data as the SDK decoded it)
  state 'reminder_fires'  list of {at, name, state_ok, state_b64, due_time, period} per fire
  stdout                  `DEACTIVATED CounterActor <id>` when the SDK deactivates an instance

Times (`at`, Slow's start/end) are time.monotonic() of this process: only ever
compared with each other, never with the caller's clock.

Exit codes as app.py: 3 the host stopped serving for good, 4 start-up failed.
"""

import asyncio
import base64
import os
import time
from datetime import timedelta
from typing import Dict, Optional

from dapr.actor import Actor, ActorInterface, Remindable, actormethod
from dapr.actor.runtime.config import ActorRuntimeConfig
from dapr.actor.runtime.runtime import ActorRuntime

import hosting

# Short enough that deactivation is observable within the interop run's budget, long
# enough that a check's own burst of calls never straddles it. The SDK sends it as
# initial_request.actor_idle_timeout (a google.protobuf.Duration).
IDLE_TIMEOUT = timedelta(seconds=float(os.environ.get('INTEROP_IDLE_TIMEOUT', '3')))

SLOW_SECONDS = 0.3
TIMER_NAME = 'interop-timer'
REMINDER_NAME = 'interop-reminder'
REMINDER_STATE = b'rstate'
# Sub-second due times on purpose: the SDK turns timedelta(milliseconds=500) into
# "0h0m0s500ms0μs", so the gateway's parser sees ms and the Greek mu in one value.
DUE = timedelta(milliseconds=500)
PERIOD = timedelta(seconds=1)
# Fires recorded per actor are capped so a timer that is never stopped cannot grow state forever.
MAX_RECORDED_FIRES = 50

# Slow calls currently inside an actor, by actor id. Module level rather than on
# the instance: if the gateway ever ran two turns at once it might also have
# activated two instances, and a per-instance flag would miss that.
_running: Dict[str, int] = {}


class CounterActorInterface(ActorInterface):
    @actormethod(name='Increment')
    async def increment(self) -> int: ...

    @actormethod(name='Slow')
    async def slow(self) -> dict: ...

    @actormethod(name='StartTimer')
    async def start_timer(self, data: dict) -> dict: ...

    @actormethod(name='StopTimer')
    async def stop_timer(self) -> dict: ...

    @actormethod(name='StartReminder')
    async def start_reminder(self) -> dict: ...

    @actormethod(name='StopReminder')
    async def stop_reminder(self) -> dict: ...


class CounterActor(Actor, CounterActorInterface, Remindable):
    async def increment(self) -> int:
        # Read through the state manager: the first read of an instance goes to the
        # gateway (GetActorState); the write is an upsert sent by the SDK in one
        # ExecuteActorStateTransaction after this method returns, before the reply.
        found, value = await self._state_manager.try_get_state('counter')
        count = (value if found else 0) + 1
        await self._state_manager.set_state('counter', count)
        return count

    async def slow(self) -> dict:
        actor_id = self.id.id
        # The SDK runs every callback on its own task and has no per-actor lock of
        # its own, so the gateway's turn is the only thing keeping these apart.
        overlapped = _running.get(actor_id, 0) > 0
        _running[actor_id] = _running.get(actor_id, 0) + 1
        start = time.monotonic()
        try:
            await asyncio.sleep(SLOW_SECONDS)
            # Another call may have entered while this one slept.
            overlapped = overlapped or _running[actor_id] > 1
        finally:
            _running[actor_id] -= 1
        return {'id': actor_id, 'start': start, 'end': time.monotonic(), 'overlap': overlapped}

    async def start_timer(self, data: dict) -> dict:
        await self.register_timer(TIMER_NAME, self.on_timer, data, DUE, PERIOD)
        return {'registered': TIMER_NAME, 'at': time.monotonic()}

    async def stop_timer(self) -> dict:
        await self.unregister_timer(TIMER_NAME)
        return {'unregistered': TIMER_NAME, 'at': time.monotonic()}

    async def on_timer(self, data) -> None:
        # Called by the SDK with the timer data it decoded from the fire's Any;
        # recorded as received so the caller compares it with what it sent.
        await self._record('timer_fires', {'at': time.monotonic(), 'data': data})

    async def start_reminder(self) -> dict:
        await self.register_reminder(REMINDER_NAME, REMINDER_STATE, DUE, PERIOD)
        return {'registered': REMINDER_NAME, 'at': time.monotonic()}

    async def stop_reminder(self) -> dict:
        await self.unregister_reminder(REMINDER_NAME)
        return {'unregistered': REMINDER_NAME, 'at': time.monotonic()}

    async def receive_reminder(
        self,
        name: str,
        state: bytes,
        due_time: timedelta,
        period: timedelta,
        ttl: Optional[timedelta] = None,
    ) -> None:
        # `state` has been through the whole chain (SDK base64 -> raw bytes on
        # RegisterActorReminder -> gateway's Any -> SDK decode); only b'rstate' is right.
        await self._record(
            'reminder_fires',
            {
                'at': time.monotonic(),
                'name': name,
                'state_ok': state == REMINDER_STATE,
                'state_b64': base64.b64encode(state).decode('ascii'),
                # str(): the SDK hands over timedeltas for Go durations and the raw
                # string otherwise ('' when the runtime sends none, as daprd 1.19 does).
                'due_time': str(due_time),
                'period': str(period),
            },
        )

    async def _record(self, key: str, entry: dict) -> None:
        found, fires = await self._state_manager.try_get_state(key)
        fires = list(fires) if found and fires else []
        fires.append(entry)
        # Saved by the SDK after the callback returns, like any turn's changes.
        await self._state_manager.set_state(key, fires[-MAX_RECORDED_FIRES:])

    async def _on_deactivate(self) -> None:
        # The caller greps the app's log for this line: it is the only way to see
        # from outside that the SDK really ran the deactivation.
        print(f'DEACTIVATED {type(self).__name__} {self.id.id}', flush=True)


async def main() -> int:
    # The SDK's only knob for the idle timeout on ActorGrpcHost is the process-global
    # ActorRuntime config; build_initial_request copies it into the registration.
    ActorRuntime.set_actor_config(ActorRuntimeConfig(actor_idle_timeout=IDLE_TIMEOUT))
    return await hosting.serve(CounterActor)


if __name__ == '__main__':
    hosting.run('runtime_app', main)
