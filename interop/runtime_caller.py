"""Interop runtime checks: drives runtime_app.py's CounterActor through the gateway's runtime.

Like caller.py it speaks to the gateway with the SDK's generated DaprStub on a
plain grpc channel, so statuses are visible as they are on the wire. What the
actor did is judged from what it left behind: replies, actor state read back
with GetActorState, GetMetadata's counts, and the `DEACTIVATED` lines in the
app's log.

Usage: runtime_caller.py --addr HOST:PORT --app-log PATH [--idle-timeout S]
                         [--scan-interval S] CHECK [CHECK ...]

Prints `PASS runtime/<check>` or `FAIL runtime/<check>: <why>` per check and,
indented, `note:` lines worth reading even when a check passes. Checks share
the caller's record of which actor ids it invoked and when, so run them in the
order run.sh uses. Every RPC has a deadline, every wait a bound.
"""

import argparse
import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf import wrappers_pb2

from caller import ERROR_HEADER, RPC_TIMEOUT, CheckFailed, describe, expect
from dapr.proto import api_service_v1, api_v1

ACTOR_TYPE = 'CounterActor'
TIMER_NAME = 'interop-timer'  # as in runtime_app.py
REMINDER_NAME = 'interop-reminder'
# What the SDK puts on the wire for timedelta(milliseconds=500) and timedelta(seconds=1):
# Go durations spelled out to the microsecond, with U+03BC (Greek mu), not U+00B5.
SDK_DUE = '0h0m0s500ms0\u03bcs'
SDK_PERIOD = '0h0m1s0ms0\u03bcs'
DUE_SECONDS, PERIOD_SECONDS = 0.5, 1.0
BYTES_VALUE_URL = 'type.googleapis.com/google.protobuf.BytesValue'
# facts §3: BytesValue.value is the JSON string of the base64 of b'rstate'.
REMINDER_ANY_VALUE = b'"cnN0YXRl"'
# Strings the SDK's JSON decoder would turn into datetimes or timedeltas are avoided
# on purpose: the check is about the gateway's encoding, not the SDK's decoder.
TIMER_DATA = {'n': 7, 'word': 'interop', 'list': [1, 2, 3], 'nested': {'ok': True}}
SLOW_SECONDS = 0.3
# The actor the durability checks use, across the gateway's restart.
DURABLE_ID = 'durable-1'


def note(message):
    print(f'  note: {message}', flush=True)


def app_error_reason(payload):
    """Short form of the SDK's error payload for a raising actor method.

    The SDK reports an outbound RPC failure as repr(AioRpcError): pull out the
    status and details so the FAIL line says e.g. `UNIMPLEMENTED: '...'`.
    """
    message = str(payload.get('message', payload)) if isinstance(payload, dict) else str(payload)
    status = re.search(r'status = StatusCode\.(\w+)', message)
    details = re.search(r'details = "([^"]*)"', message)
    if status:
        return f'{status.group(1)}: {details.group(1) if details else "?"!r}'
    return message[:300]


class RuntimeCaller:
    def __init__(self, addr, app_log, idle_timeout, scan_interval):
        self.channel = grpc.insecure_channel(addr)
        self.stub = api_service_v1.DaprStub(self.channel)
        self.app_log = app_log
        self.idle = idle_timeout
        self.scan = scan_interval
        # Per actor id: when we last sent an invoke, and when its reply arrived. The
        # gateway's idle clock starts at the turn's start, which lies between the two.
        self.sent = {}
        self.replied = {}

    # -- helpers ---------------------------------------------------------------

    def invoke(self, method, actor_id, body=None):
        """One InvokeActor; returns the decoded JSON reply. An app-side error is a CheckFailed."""
        data = json.dumps(body).encode() if body is not None else b''
        request = api_v1.InvokeActorRequest(
            actor_type=ACTOR_TYPE, actor_id=actor_id, method=method, data=data
        )
        self.sent[actor_id] = time.monotonic()
        response, call = self.stub.InvokeActor.with_call(request, timeout=RPC_TIMEOUT)
        self.replied[actor_id] = time.monotonic()
        try:
            reply = json.loads(response.data) if response.data else None
        except ValueError:
            raise CheckFailed(f'{method} on {actor_id}: reply is not JSON: {response.data[:200]!r}')
        if dict(call.initial_metadata() or ()).get(ERROR_HEADER) == 'true':
            raise CheckFailed(f'{method} on {actor_id} raised in the app: {app_error_reason(reply)}')
        return reply

    def state(self, actor_id, key):
        request = api_v1.GetActorStateRequest(actor_type=ACTOR_TYPE, actor_id=actor_id, key=key)
        return self.stub.GetActorState(request, timeout=RPC_TIMEOUT).data

    def state_json(self, actor_id, key, default=None):
        data = self.state(actor_id, key)
        if not data:
            return default
        try:
            return json.loads(data)
        except ValueError:
            raise CheckFailed(f'state {actor_id}/{key} is not JSON: {data[:200]!r}')

    def active_count(self):
        runtime = self.stub.GetMetadata(api_v1.GetMetadataRequest(), timeout=RPC_TIMEOUT).actor_runtime
        # A type with no active actor may be listed with 0 or left out: both mean 0.
        return sum(a.count for a in runtime.active_actors if a.type == ACTOR_TYPE)

    def deactivated_ids(self):
        try:
            with open(self.app_log, encoding='utf-8', errors='replace') as log:
                text = log.read()
        except OSError:
            return set()
        return set(re.findall(rf'^DEACTIVATED {ACTOR_TYPE} (\S+)$', text, re.MULTILINE))

    def app_complaints(self):
        """The SDK's own words when it refused a fire (request_failed), last one first."""
        try:
            with open(self.app_log, encoding='utf-8', errors='replace') as log:
                lines = [l.strip() for l in log if ('Actor callback' in l and 'fail' in l) or 'undecodable payload' in l]
        except OSError:
            return ''
        return f'; the app logged: {lines[-1][-300:]}' if lines else ''

    def wait_for(self, seconds, probe, what):
        """Polls probe() until it returns a true value; CheckFailed after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() >= deadline:
                raise CheckFailed(f'{what} not seen within {seconds:.1f}s')
            time.sleep(0.2)

    def fires(self, actor_id, key, want, bound):
        """Polls the actor's recorded fires until there are `want`; returns them (maybe fewer)."""
        deadline = time.monotonic() + bound
        fires = []
        while time.monotonic() < deadline:
            fires = self.state_json(actor_id, key, default=[])
            if len(fires) >= want:
                break
            time.sleep(0.2)
        return fires

    def stop(self, method, actor_id, failure):
        """The clean-up call after a timer/reminder check: made whatever happened.

        `failure` is the check's own CheckFailed (or None); it wins over a failing
        clean-up, which then only leaves a note. Returns the reply.
        """
        try:
            return self.invoke(method, actor_id)
        except (CheckFailed, grpc.RpcError) as error:
            if failure is None:
                raise CheckFailed(f'{method} failed: {describe(error)}')
            note(f'{method} on {actor_id} also failed: {describe(error)}')
        raise failure

    # -- checks ----------------------------------------------------------------

    def check_state_counter(self):
        """Increment x3: replies 1,2,3 and the SDK's saved JSON is what GetActorState returns."""
        actor_id = 'counter-1'
        before = self.state(actor_id, 'counter')
        expect(before == b'', f'fresh in-memory gateway already has counter state {before!r}')
        replies = [self.invoke('Increment', actor_id) for _ in range(3)]
        expect(replies == [1, 2, 3], f'Increment replies {replies}, expected [1, 2, 3]')
        stored = self.state(actor_id, 'counter')
        # The SDK's DefaultJSONSerializer writes compact JSON, so the stored bytes are b'3'.
        expect(stored == b'3', f'GetActorState(counter) = {stored!r}, expected the SDK\'s JSON b\'3\'')

    def check_metadata_count(self):
        """GetMetadata's CounterActor count = distinct ids invoked and not yet idle."""
        new_ids = ['count-a', 'count-b', 'count-c']
        with ThreadPoolExecutor(max_workers=len(new_ids)) as pool:
            for future in [pool.submit(self.invoke, 'Increment', i) for i in new_ids]:
                future.result(timeout=RPC_TIMEOUT * 2)
        asked = time.monotonic()
        count = self.active_count()
        answered = time.monotonic()
        # Certainly active: its turn started after our send, so it cannot have idled out
        # before send + idle. Certainly gone: idle + scan (+1 s for the app's reply)
        # after its reply. In between (only on a very slow run) the count may go either way.
        sure = {i for i, t in self.sent.items() if answered < t + self.idle}
        gone = {i for i, t in self.replied.items() if asked > t + self.idle + self.scan + 1}
        maybe = set(self.sent) - sure - gone
        if not maybe:
            expect(count == len(sure), f'count {count}, expected {len(sure)} for ids {sorted(sure)}')
        else:
            note(f'metadata-count: {sorted(maybe)} were near their idle timeout; checked a range')
            expect(
                len(sure) <= count <= len(sure) + len(maybe),
                f'count {count}, expected {len(sure)}..{len(sure) + len(maybe)}',
            )

    def check_turns(self):
        """Concurrent Slow calls: one id never overlaps itself, different ids run together."""
        same = 'turns-same'
        others = ['turns-a', 'turns-b', 'turns-c', 'turns-d']
        targets = [same] * 4 + others
        # All eight are in flight at once; the gateway alone decides who waits.
        with ThreadPoolExecutor(max_workers=len(targets)) as pool:
            futures = [pool.submit(self.invoke, 'Slow', i) for i in targets]
            results = [f.result(timeout=RPC_TIMEOUT * 2) for f in futures]
        own = sorted((r for r in results if r['id'] == same), key=lambda r: r['start'])
        expect(not any(r['overlap'] for r in results), f'the app saw two Slow calls inside one actor: {results}')
        for earlier, later in zip(own, own[1:]):
            expect(
                later['start'] >= earlier['end'],
                f'calls to {same} overlapped: one ran {earlier["start"]:.3f}-{earlier["end"]:.3f}, '
                f'the next started at {later["start"]:.3f}',
            )
        spans = [r for r in results if r['id'] != same]
        latest_start = max(r['start'] for r in spans)
        earliest_end = min(r['end'] for r in spans)
        expect(
            latest_start < earliest_end,
            f'calls to different ids did not run together: last start {latest_start:.3f} '
            f'>= first end {earliest_end:.3f} (serialised across actors?)',
        )
        note(
            f'turns: {same} took {own[-1]["end"] - own[0]["start"]:.2f}s for 4 x {SLOW_SECONDS}s; '
            f'4 ids took {max(r["end"] for r in spans) - min(r["start"] for r in spans):.2f}s together'
        )

    def check_deactivation(self):
        """After the idle timeout (+ one scan) the SDK deactivates the actor and the count drops."""
        actor_id = 'deact-1'
        self.invoke('Increment', actor_id)
        sent = self.sent[actor_id]
        count_before = self.active_count()
        expect(count_before >= 1, f'count is {count_before} right after invoking {actor_id}')
        # SPEC D2: within one scan after the timeout; the rest is slack for the app and our 0.2 s polling.
        bound = self.idle + self.scan + 2.5
        self.wait_for(
            bound - (time.monotonic() - sent),
            lambda: actor_id in self.deactivated_ids(),
            f'DEACTIVATED {ACTOR_TYPE} {actor_id} in the app log',
        )
        after = time.monotonic() - sent
        # Deactivating before the registered timeout would mean the registration's
        # actor_idle_timeout (or the turn's idle clock) is not honoured.
        expect(after >= self.idle - 0.2, f'{actor_id} deactivated {after:.2f}s after its call, idle timeout is {self.idle}s')
        note(f'deactivation: {actor_id} deactivated {after:.2f}s after its only call (idle {self.idle}s, scan {self.scan}s)')
        # Every id invoked so far was invoked earlier and has idled out too.
        invoked = set(self.sent)
        try:
            self.wait_for(self.scan + 2, lambda: invoked <= self.deactivated_ids(), 'every invoked id deactivated')
        except CheckFailed:
            raise CheckFailed(f'never deactivated: {sorted(invoked - self.deactivated_ids())}')
        try:
            self.wait_for(self.scan + 2, lambda: self.active_count() == 0, 'count 0')
        except CheckFailed:
            raise CheckFailed(f'GetMetadata count stays {self.active_count()} (was {count_before}) after all ids deactivated')

    def check_state_after_deactivation(self):
        """A deactivated actor's state stays; a new instance reads it from the gateway and goes on."""
        actor_id = 'counter-1'
        expect(actor_id in self.deactivated_ids(), f'{actor_id} was never deactivated (run deactivation first)')
        got = self.invoke('Increment', actor_id)
        expect(got == 4, f'Increment on the re-activated {actor_id} returned {got}, expected 4')

    def check_timer(self):
        """StartTimer: fires arrive with the data sent, after the due time, a period apart; StopTimer ends them."""
        actor_id = 'timer-1'
        try:
            started = self.invoke('StartTimer', actor_id, TIMER_DATA)
        except CheckFailed as error:
            raise CheckFailed(f'the SDK could not register the timer (RegisterActorTimer): {error}')
        registered_at = started['at']
        bound = DUE_SECONDS + PERIOD_SECONDS + 4
        fires = self.fires(actor_id, 'timer_fires', 2, bound)
        failure = None
        try:
            expect(
                len(fires) >= 2,
                f'{len(fires)} timer fire(s) recorded within {bound:.1f}s, expected 2{self.app_complaints()}',
            )
            for fire in fires:
                expect(fire['data'] == TIMER_DATA, f'timer data decoded by the SDK as {fire["data"]!r}, sent {TIMER_DATA!r}')
            first = fires[0]['at'] - registered_at
            # The first fire may not come before the due time (a little slack for the
            # StartTimer reply, which happens after the gateway took the registration).
            expect(first >= DUE_SECONDS - 0.2, f'first fire {first:.2f}s after registration, due time {DUE_SECONDS}s')
            gaps = [b['at'] - a['at'] for a, b in zip(fires, fires[1:])]
            expect(min(gaps) >= PERIOD_SECONDS - 0.2, f'fires {gaps} apart, period {PERIOD_SECONDS}s')
        except CheckFailed as error:
            failure = error
        # Stop it whatever happened, so it does not keep the actor busy.
        stopped = self.stop('StopTimer', actor_id, failure)
        if failure is not None:
            raise failure
        time.sleep(PERIOD_SECONDS + 0.3)
        late = [f for f in self.state_json(actor_id, 'timer_fires', default=[]) if f['at'] > stopped['at'] + 0.5]
        expect(not late, f'{len(late)} fire(s) after UnregisterActorTimer')

    def check_reminder(self):
        """StartReminder: GetActorReminder as registered, fires decode to b'rstate'; StopReminder removes it."""
        actor_id = 'reminder-1'
        key = dict(actor_type=ACTOR_TYPE, actor_id=actor_id, name=REMINDER_NAME)
        try:
            started = self.invoke('StartReminder', actor_id)
        except CheckFailed as error:
            raise CheckFailed(f'the SDK could not register the reminder (RegisterActorReminder): {error}')
        failure = None
        try:
            got = self.stub.GetActorReminder(api_v1.GetActorReminderRequest(**key), timeout=RPC_TIMEOUT)
            expect(
                (got.due_time, got.period) == (SDK_DUE, SDK_PERIOD),
                f'GetActorReminder due_time/period {got.due_time!r}/{got.period!r}, registered {SDK_DUE!r}/{SDK_PERIOD!r}',
            )
            expect(got.HasField('data'), 'GetActorReminder has no data')
            inner = wrappers_pb2.BytesValue()
            expect(
                got.data.type_url == BYTES_VALUE_URL and got.data.Unpack(inner),
                f'GetActorReminder data is an Any of {got.data.type_url!r}, expected BytesValue',
            )
            expect(inner.value == REMINDER_ANY_VALUE, f'GetActorReminder data {inner.value!r}, expected {REMINDER_ANY_VALUE!r}')

            bound = DUE_SECONDS + PERIOD_SECONDS + 4
            fires = self.fires(actor_id, 'reminder_fires', 2, bound)
            expect(
                len(fires) >= 2,
                f'{len(fires)} reminder fire(s) recorded within {bound:.1f}s, expected 2'
                # A data Any the SDK cannot decode makes it answer request_failed: say so.
                f'{self.app_complaints()}',
            )
            for fire in fires:
                expect(fire['name'] == REMINDER_NAME, f'fire for reminder {fire["name"]!r}')
                expect(fire['state_ok'], f'reminder state decoded to base64 {fire["state_b64"]!r}, expected b\'rstate\'')
            first = fires[0]['at'] - started['at']
            expect(first >= DUE_SECONDS - 0.2, f'first fire {first:.2f}s after registration, due time {DUE_SECONDS}s')
            note(f'reminder: fire carried due_time={fires[0]["due_time"]!r} period={fires[0]["period"]!r} (as the SDK decoded them)')
        except CheckFailed as error:
            failure = error
        except grpc.RpcError as error:
            failure = CheckFailed(f'GetActorReminder: {describe(error)}')
        stopped = self.stop('StopReminder', actor_id, failure)
        if failure is not None:
            raise failure
        try:
            self.stub.GetActorReminder(api_v1.GetActorReminderRequest(**key), timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            expect(error.code() == grpc.StatusCode.NOT_FOUND, f'GetActorReminder after unregister: {describe(error)}, expected NOT_FOUND')
        else:
            raise CheckFailed('GetActorReminder still finds the reminder after UnregisterActorReminder')
        time.sleep(PERIOD_SECONDS + 0.3)
        late = [f for f in self.state_json(actor_id, 'reminder_fires', default=[]) if f['at'] > stopped['at'] + 0.5]
        expect(not late, f'{len(late)} fire(s) after UnregisterActorReminder')

    # -- durability (run.sh restarts the gateway on its data directory in between) --------

    def check_durable_before_restart(self):
        """Counter at 2 and a reminder firing, on a gateway that is about to be restarted."""
        counts = [self.invoke('Increment', DURABLE_ID) for _ in range(2)]
        expect(counts == [1, 2], f'Increment answered {counts}, expected [1, 2]')
        self.invoke('StartReminder', DURABLE_ID)
        bound = DUE_SECONDS + PERIOD_SECONDS + 4
        fires = self.fires(DURABLE_ID, 'reminder_fires', 1, bound)
        expect(fires, f'no reminder fire within {bound:.1f}s{self.app_complaints()}')

    def check_durable_after_restart(self):
        """After the restart: the counter and the reminder are back, and the reminder fires again."""
        key = dict(actor_type=ACTOR_TYPE, actor_id=DURABLE_ID, name=REMINDER_NAME)

        # The SDK reconnects on its own (a second or so after the stream ended); until it
        # has, reminder RPCs answer PERMISSION_DENIED (no live stream hosts the type).
        def reminder():
            try:
                return self.stub.GetActorReminder(api_v1.GetActorReminderRequest(**key), timeout=RPC_TIMEOUT)
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.PERMISSION_DENIED:
                    return None
                raise

        got = self.wait_for(15, reminder, 'the app back on the restarted gateway')
        expect(
            (got.due_time, got.period) == (SDK_DUE, SDK_PERIOD),
            f'GetActorReminder after the restart: {got.due_time!r}/{got.period!r}, registered {SDK_DUE!r}/{SDK_PERIOD!r}',
        )
        # Read straight from the restarted gateway's store, not through the app's cache.
        counter = self.state_json(DURABLE_ID, 'counter')
        expect(counter == 2, f'GetActorState counter after the restart: {counter!r}, expected 2')
        before = len(self.state_json(DURABLE_ID, 'reminder_fires', default=[]))
        bound = PERIOD_SECONDS + 4
        fires = self.fires(DURABLE_ID, 'reminder_fires', before + 1, bound)
        expect(
            len(fires) > before,
            f'no reminder fire within {bound:.1f}s of the restart ({before} before){self.app_complaints()}',
        )
        expect(all(f['state_ok'] for f in fires), 'a reminder fire after the restart did not decode to b\'rstate\'')
        note(f'durable: {len(fires)} reminder fire(s) recorded across the restart')
        self.invoke('StopReminder', DURABLE_ID)


CHECKS = {
    'state-counter': RuntimeCaller.check_state_counter,
    'metadata-count': RuntimeCaller.check_metadata_count,
    'turns': RuntimeCaller.check_turns,
    'deactivation': RuntimeCaller.check_deactivation,
    'state-after-deactivation': RuntimeCaller.check_state_after_deactivation,
    'timer': RuntimeCaller.check_timer,
    'reminder': RuntimeCaller.check_reminder,
    'durable-before-restart': RuntimeCaller.check_durable_before_restart,
    'durable-after-restart': RuntimeCaller.check_durable_after_restart,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--addr', required=True)
    parser.add_argument('--app-log', required=True, help="runtime_app.py's log (stdout and stderr)")
    parser.add_argument('--idle-timeout', type=float, default=3.0, help='as configured in runtime_app.py')
    parser.add_argument('--scan-interval', type=float, default=1.0, help="the gateway's --idle-scan-interval")
    parser.add_argument('checks', nargs='+', choices=list(CHECKS))
    args = parser.parse_args()

    caller = RuntimeCaller(args.addr, args.app_log, args.idle_timeout, args.scan_interval)
    failed = 0
    for name in args.checks:
        label = f'runtime/{name}'
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
