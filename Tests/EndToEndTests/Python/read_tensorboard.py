"""Reads a TensorBoard log directory with the tensorboard package and prints every scalar as
JSON {tag: [[step, value], ...]}; also checks every record's framing and masked CRC-32C by hand
(a torn last record, as a SIGKILL mid-write may leave, is allowed and reported)."""
import glob
import json
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def check_framing(path):
    data = open(path, "rb").read()
    offset, records = 0, 0
    while offset + 12 <= len(data):
        header = data[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[offset + 8:offset + 12])
        assert header_crc == masked(header), f"{path}: bad length CRC at {offset}"
        end = offset + 12 + length + 4
        if end > len(data):
            break
        payload = data[offset + 12:offset + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[end - 4:end])
        assert payload_crc == masked(payload), f"{path}: bad payload CRC at {offset}"
        records += 1
        offset = end
    return records, len(data) - offset


def main(directory):
    framing = {}
    for path in sorted(glob.glob(directory + "/events.out.tfevents.*")):
        framing[path] = check_framing(path)
    acc = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    print(json.dumps({"scalars": scalars, "framing": framing}))


if __name__ == "__main__":
    main(sys.argv[1])
