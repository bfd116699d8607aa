"""Wire check: the descriptors the gateway serves against the official Python SDK's.

The gateway's protos are hand-written (proto/), so nothing but a comparison
stops a typo in a field number from shipping. This script asks the *running*
gateway for its descriptors over gRPC reflection (so it checks what was built
and is served, not the source) and compares them with the descriptors compiled
into the pinned SDK (`dapr.proto.runtime.v1.dapr_pb2` and the files it
imports: `actors_pb2`, `common_pb2`, ...).

For every method of our `dapr.proto.runtime.v1.Dapr`: the SDK's service has it
with the same request and response types and the same streaming on each side.
For every message reachable from those methods (requests, responses, the types
of their fields, map entries, down to google.protobuf's): each field's name,
number, type, type name, label, oneof and proto3 `optional` presence, and each
enum's values. A field's JSON name is not compared: it plays no part in the
binary protocol, and Dapr sets custom ones we do not copy.

A message we trim on purpose (TRIMMED below) must match on every field we keep
and may lack the SDK's others, provided it reserves their numbers so they can
never come back with another meaning. Every other message must have exactly
the SDK's fields.

Usage: wire_check.py --addr HOST:PORT [--token T]

One line per method, `PASS wire/<Method>` or `FAIL wire/<Method>: <why>`, and
`wire/detects-drift`, which proves the comparison is not vacuous by altering a
copy of our descriptors and expecting complaints; other lines are notes.
run.sh counts the PASS/FAIL lines. Exit status 1 if anything failed.
"""

import argparse
import copy
import sys

import grpc
from google.protobuf import descriptor_pb2

# grpcio-reflection ships Python bindings for v1alpha only. The v1 protocol the
# gateway serves has the same messages with the same numbers under another
# package name, so these bindings work on the v1 method path.
from grpc_reflection.v1alpha import reflection_pb2

from dapr.proto.runtime.v1 import dapr_pb2

SERVICE = 'dapr.proto.runtime.v1.Dapr'
REFLECTION_METHOD = '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo'
RPC_TIMEOUT = 10.0  # seconds, for the whole reflection exchange

# Messages we serve with a subset of Dapr's fields, and why. A decoder skips
# fields it does not know, so a trimmed message stays wire-compatible both ways
# as long as the fields we do have agree.
TRIMMED = {
    # We are no full daprd: no components, subscriptions, HTTP endpoints,
    # workflows or scheduler to report. Only id, runtime_version and
    # actor_runtime (1, 8, 10) are served.
    '.dapr.proto.runtime.v1.GetMetadataResponse',
}

FieldType = descriptor_pb2.FieldDescriptorProto


class Index:
    """Messages, enums and services of a set of files, by fully qualified name (`.pkg.Name`)."""

    def __init__(self, files):
        self.messages = {}
        self.enums = {}
        self.services = {}
        for f in files:
            prefix = '.' + f.package if f.package else ''
            self._add_messages(prefix, f.message_type)
            for e in f.enum_type:
                self.enums[f'{prefix}.{e.name}'] = e
            for s in f.service:
                self.services[f'{prefix}.{s.name}'.lstrip('.')] = s

    def _add_messages(self, prefix, messages):
        for m in messages:
            name = f'{prefix}.{m.name}'
            self.messages[name] = m
            for e in m.enum_type:
                self.enums[f'{name}.{e.name}'] = e
            self._add_messages(name, m.nested_type)


# ---- where the descriptors come from --------------------------------------------------------


def served_files(addr, token):
    """Every file the gateway's reflection gives for our service, and the files they import."""
    channel = grpc.insecure_channel(addr)
    call = channel.stream_stream(
        REFLECTION_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    metadata = [('dapr-api-token', token)] if token else None
    files = {}

    def ask(request):
        (response,) = list(call(iter([request]), timeout=RPC_TIMEOUT, metadata=metadata))
        if response.HasField('error_response'):
            raise RuntimeError(f'reflection refused {request}: {response.error_response.error_message}')
        for raw in response.file_descriptor_response.file_descriptor_proto:
            f = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files[f.name] = f

    try:
        listed = list(call(iter([reflection_pb2.ServerReflectionRequest(list_services='')]),
                           timeout=RPC_TIMEOUT, metadata=metadata))
        names = [s.name for s in listed[0].list_services_response.service]
        if SERVICE not in names:
            raise RuntimeError(f'reflection does not list {SERVICE}: {names}')
        ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE))
        # A server may send a file without its imports: fetch whatever is missing.
        while missing := sorted({d for f in files.values() for d in f.dependency} - files.keys()):
            for name in missing:
                ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name))
    finally:
        channel.close()
    return list(files.values())


def sdk_files():
    """The SDK's dapr.proto and everything it imports, as FileDescriptorProtos."""
    found = {}
    pending = [dapr_pb2.DESCRIPTOR]
    while pending:
        fd = pending.pop()
        if fd.name in found:
            continue
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        found[fd.name] = proto
        pending.extend(fd.dependencies)
    return list(found.values())


# ---- the comparison -------------------------------------------------------------------------


def field_shape(message, field):
    """What must agree about a field, as a comparable tuple."""
    oneof = message.oneof_decl[field.oneof_index].name if field.HasField('oneof_index') else None
    return (
        field.name,
        field.number,
        FieldType.Type.Name(field.type),
        field.type_name,
        FieldType.Label.Name(field.label),
        oneof,
        field.proto3_optional,
    )


SHAPE_PARTS = ('name', 'number', 'type', 'type_name', 'label', 'oneof', 'proto3_optional')


def describe(shape):
    return ', '.join(f'{k}={v!r}' for k, v in zip(SHAPE_PARTS, shape))


def is_reserved(message, number):
    # reserved_range's end is exclusive in descriptors.
    return any(r.start <= number < r.end for r in message.reserved_range)


def compare_message(name, ours, theirs, problems, notes):
    if ours.options.map_entry != theirs.options.map_entry:
        problems.append(f'{name}: map_entry {ours.options.map_entry} vs SDK {theirs.options.map_entry}')
    our_fields = {f.number: f for f in ours.field}
    their_fields = {f.number: f for f in theirs.field}
    for number, field in sorted(our_fields.items()):
        if number not in their_fields:
            problems.append(f'{name}: field {number} {field.name!r} is not in the SDK')
            continue
        a, b = field_shape(ours, field), field_shape(theirs, their_fields[number])
        if a != b:
            problems.append(f'{name} field {number}: ours ({describe(a)}) vs SDK ({describe(b)})')
    lacking = sorted(set(their_fields) - set(our_fields))
    if not lacking:
        return
    if name not in TRIMMED:
        problems.append(f'{name}: lacks the SDK fields {lacking}')
        return
    unreserved = [n for n in lacking if not is_reserved(ours, n)]
    if unreserved:
        problems.append(f'{name}: trimmed, but SDK field numbers {unreserved} are not reserved')
    else:
        notes.append(f'{name}: trimmed on purpose, lacks SDK fields {lacking} (all reserved)')


def compare_enum(name, ours, theirs, problems):
    a = sorted((v.number, v.name) for v in ours.value)
    b = sorted((v.number, v.name) for v in theirs.value)
    if a != b:
        problems.append(f'{name}: enum values {a} vs SDK {b}')


def compare_method(ours, theirs, method):
    """Problems, notes and how many types were compared, for one method and every type reachable from it."""
    problems, notes = [], []
    sdk = theirs.services[SERVICE]
    their_method = next((m for m in sdk.method if m.name == method.name), None)
    if their_method is None:
        return [f'the SDK service has no method {method.name}'], notes, 0
    for part in ('input_type', 'output_type', 'client_streaming', 'server_streaming'):
        a, b = getattr(method, part), getattr(their_method, part)
        if a != b:
            problems.append(f'{part} {a!r} vs SDK {b!r}')

    seen = set()
    pending = [method.input_type, method.output_type]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in ours.enums:
            if name not in theirs.enums:
                problems.append(f'enum {name} is not in the SDK')
            else:
                compare_enum(name, ours.enums[name], theirs.enums[name], problems)
            continue
        message = ours.messages.get(name)
        if message is None:
            problems.append(f'{name} is referenced but not in the served descriptors')
            continue
        if name not in theirs.messages:
            problems.append(f'message {name} is not in the SDK')
            continue
        compare_message(name, message, theirs.messages[name], problems, notes)
        pending.extend(f.type_name for f in message.field if f.type_name)
    return problems, notes, len(seen)


def compare(ours, theirs):
    """(method name, problems, notes, types compared) for every method we serve."""
    service = ours.services.get(SERVICE)
    if service is None:
        return [(SERVICE, [f'{SERVICE} is not in the served descriptors'], [], 0)]
    return [(m.name, *compare_method(ours, theirs, m)) for m in service.method]


def detects_drift(files, theirs):
    """Why the comparison would miss a drifted number or type, or None if it catches both."""
    target = '.dapr.proto.runtime.v1.RegisterActorReminderRequest'
    package, short = target[1:].rsplit('.', 1)
    for drift in ('number', 'type'):
        altered = copy.deepcopy(files)
        f = next(f for f in altered if f.package == package and any(m.name == short for m in f.message_type))
        message = next(m for m in f.message_type if m.name == short)
        field = next(x for x in message.field if x.name == 'ttl')
        if drift == 'number':
            field.number = 99
        else:
            field.type = FieldType.TYPE_BYTES
        caught = any(problems for _, problems, _, _ in compare(Index(altered), theirs))
        if not caught:
            return f'a changed {drift} of {short}.ttl went unnoticed'
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--addr', required=True, help='HOST:PORT of a running gateway')
    parser.add_argument('--token', help='dapr-api-token, if the gateway requires one')
    args = parser.parse_args()

    try:
        files = served_files(args.addr, args.token)
    except (grpc.RpcError, RuntimeError, ValueError) as error:
        print(f'FAIL wire/reflection: {error}')
        return 1
    theirs = Index(sdk_files())

    failed = 0
    for method, problems, notes, types in compare(Index(files), theirs):
        for note in notes:
            print(f'note: {method}: {note}')
        if problems:
            failed += 1
            print(f'FAIL wire/{method}: ' + '; '.join(problems))
        else:
            print(f'PASS wire/{method} ({types} types)')

    why = detects_drift(files, theirs)
    if why:
        failed += 1
        print(f'FAIL wire/detects-drift: {why}')
    else:
        print('PASS wire/detects-drift')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
