#!/usr/bin/env python3
"""Write vpc.parquet: VPC Flow Logs records as AWS delivers them to S3 in Parquet, made with
pyarrow (an implementation independent of the parquet crate netfence reads with).

Columns are the flow log fields with `_` for `-`; types as the "Parquet data type" of each
field in AWS's "Flow log records" page (INT_32 for version, ports, protocol, tcp-flags; INT_64
for packets, bytes, start, end; STRING otherwise); a field that does not apply is null; GZIP
compression, as AWS writes. The same records as text are in parquet.rs's test.

Run once from this directory (pip install pyarrow); the output is committed.
"""
import pyarrow as pa
import pyarrow.parquet as pq

schema = pa.schema([
    ("version", pa.int32()),
    ("account_id", pa.string()),
    ("interface_id", pa.string()),
    ("srcaddr", pa.string()),
    ("dstaddr", pa.string()),
    ("srcport", pa.int32()),
    ("dstport", pa.int32()),
    ("protocol", pa.int32()),
    ("packets", pa.int64()),
    ("bytes", pa.int64()),
    ("start", pa.int64()),
    ("end", pa.int64()),
    ("action", pa.string()),
    ("log_status", pa.string()),
    ("vpc_id", pa.string()),
    ("tcp_flags", pa.int32()),
    ("pkt_srcaddr", pa.string()),
    ("pkt_dstaddr", pa.string()),
    ("flow_direction", pa.string()),
])

N = None
rows = [
    # web -> api, accepted; the SYN opened it.
    (5, "123456789010", "eni-0a1b2c3d4e5f60718", "10.0.0.10", "10.0.0.20", 40000, 8080, 6, 10, 840, 1700000000, 1700000060, "ACCEPT", "OK", "vpc-01234567", 2, "10.0.0.10", "10.0.0.20", "ingress"),
    # api's SYN-ACK back: a reply.
    (5, "123456789010", "eni-0a1b2c3d4e5f60718", "10.0.0.20", "10.0.0.10", 8080, 40000, 6, 10, 840, 1700000000, 1700000060, "ACCEPT", "OK", "vpc-01234567", 18, "10.0.0.20", "10.0.0.10", "egress"),
    # batch -> api through the node's primary address: pkt-srcaddr is the pod.
    (5, "123456789010", "eni-0b1b2c3d4e5f60718", "10.0.1.5", "10.0.0.20", 40001, 8080, 6, 3, 180, 1700000060, 1700000120, "ACCEPT", "OK", "vpc-01234567", 2, "10.0.1.30", "10.0.0.20", "ingress"),
    # web -> api rejected.
    (5, "123456789010", "eni-0a1b2c3d4e5f60718", "10.0.0.10", "10.0.0.20", 40003, 8080, 6, 2, 120, 1700000060, 1700000120, "REJECT", "OK", "vpc-01234567", 2, "10.0.0.10", "10.0.0.20", "ingress"),
    # ICMP: no ports (null).
    (5, "123456789010", "eni-0a1b2c3d4e5f60718", "10.0.1.30", "10.0.0.20", N, N, 1, 1, 84, 1700000120, 1700000180, "ACCEPT", "OK", "vpc-01234567", N, "10.0.1.30", "10.0.0.20", "ingress"),
    # No traffic in the window.
    (5, "123456789010", "eni-0a1b2c3d4e5f60718", N, N, N, N, N, N, N, 1700000180, 1700000240, N, "NODATA", "vpc-01234567", N, N, N, N),
]
columns = list(zip(*rows))
table = pa.table([pa.array(c, type=f.type) for c, f in zip(columns, schema)], schema=schema)
pq.write_table(table, "vpc.parquet", compression="gzip")
