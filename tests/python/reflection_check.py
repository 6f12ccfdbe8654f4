"""Discovers pcapd's API through gRPC server reflection, as a tool without the proto files
would: lists the services and resolves pcap.v1.Pcapd's methods with grpcio-reflection's
client (protocol v1alpha), then lists the services again over protocol v1 (what grpcurl
speaks), whose messages are the same on the wire.

usage: reflection_check.py unix SOCKET
       reflection_check.py tls 127.0.0.1:PORT CA CERT KEY   (server certificate for localhost)
Prints one fact per line for the caller to check.
"""

import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

TIMEOUT = 20


def channel(argv):
    if argv[1] == "unix":
        return grpc.insecure_channel("unix://" + argv[2])
    ca, cert, key = (open(path, "rb").read() for path in argv[3:6])
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(
        argv[2], creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )


def v1_services(ch):
    """Lists services over grpc.reflection.v1 with a generic stub."""
    call = ch.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    for response in call(iter([request]), timeout=TIMEOUT):
        return sorted(s.name for s in response.list_services_response.service)
    return []


def main():
    with channel(sys.argv) as ch:
        grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        db = ProtoReflectionDescriptorDatabase(ch)
        for name in sorted(db.get_services()):
            print("v1alpha service", name)
        pool = DescriptorPool(db)
        service = pool.FindServiceByName("pcap.v1.Pcapd")
        for m in service.methods:
            kind = "stream" if m.server_streaming else "unary"
            print(
                "method",
                m.name,
                m.input_type.full_name,
                m.output_type.full_name,
                kind,
            )
        packet = pool.FindMessageTypeByName("pcap.v1.Packet")
        print("fields pcap.v1.Packet", " ".join(f.name for f in packet.fields))
        for name in v1_services(ch):
            print("v1 service", name)


if __name__ == "__main__":
    main()
