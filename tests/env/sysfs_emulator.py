#!/usr/bin/env python3
"""A kernel emulator for the PCI part of sysfs, for tests of agent/dpdk. Never a real device.

It builds, under --root, the files the agent's FileSysfs touches, laid out as the kernel's:

  bus/pci/devices/<pci>/driver_override   regular file
  bus/pci/devices/<pci>/driver            symlink to ../../drivers/<drv> while bound
  bus/pci/drivers/<drv>/{bind,unbind}     regular files
  bus/pci/drivers/<drv>/<pci>             symlink back to the device while bound
  bus/pci/drivers_probe                   regular file
  class/net/<ifname>/device               symlink to the device, while the device is bound to a
  class/net/<ifname>/address              netdev driver (--netdev-driver, default ena): the
                                          interface exists only then

and then plays the kernel's part of each write, as Documentation/ABI/testing/sysfs-bus-pci
describes it:

  drivers/<d>/unbind   <pci>  bound to d: the driver link goes (and the netdev with it)
  drivers_probe        <pci>  unbound: bound to driver_override when set and that driver is
                              loaded, else to the device's default driver; bound: nothing
  drivers/<d>/bind     <pci>  unbound, and the override empty or d: bound to d
  driver_override      <drv>  remembered; "\\n" (or an empty line) clears it

One trailing newline is accepted. After each write the attribute file is truncated back to empty
(the override is kept in memory, not in the file). A write the kernel would refuse (EINVAL,
ENODEV, EBUSY) cannot fail here, since the writer's write(2) has long returned: the emulator
changes nothing and prints an "error" line instead.

Writes are seen through inotify (ctypes on libc: inotify_init1, inotify_add_watch with
IN_CLOSE_WRITE on each attribute file), in the order they were closed. The answer is therefore
asynchronous, as an asynchronous probe's is in the real kernel: a writer must wait for the driver
link to settle (PciBinder does, with a sleeper).

Every handled operation prints one JSON line to stdout, flushed, so a test can count them:
  {"op":"override","pci":...,"driver":...}  ("" when cleared)
  {"op":"unbind","pci":...,"driver":...}    {"op":"bind","pci":...,"driver":...}
  {"op":"probe","pci":...,"driver":...}     (the driver it has afterwards, "" for none)
  {"op":"unload","driver":...} {"op":"load","driver":...}
  {"op":"link-del","ifname":...} {"op":"link-add","ifname":...,"mac":...}   (with --netns-path)
  {"op":"error","path":...,"value":...,"reason":...}
  {"op":"link-error","command":...,"reason":...}  (an `ip` command that failed)
  {"op":"ready","root":...}                 once the tree is built and watched

Runtime control (--control FILE): write "unload <drv>" or "load <drv>" to FILE. Unloading
unbinds the driver's devices (as rmmod does) and removes its directory, so a later restore to it
finds the driver missing, as on a node without the module. Loading creates the directory again
and binds the unbound devices that match it (override, else default driver), as modprobe does.

Link side (--netns-path P, needs root): when a device's netdev goes away, the interface <ifname>
is deleted in that network namespace; when it comes back, it is created again as a veth (peer
<ifname>-pr... in the same namespace) with the device's MAC. This runs `ip` through `nsenter`:
the emulator is test code, the product never shells out.

Usage:
  sysfs_emulator.py --root DIR --driver ena --driver vfio-pci \\
      --device 0000:00:06.0=eth1,02:aa:00:00:00:01@ena [--netdev-driver ena] \\
      [--netns-path /run/netns/X] [--control FILE] [--ready-file F]

A device spec is PCI=IFNAME[,MAC][@DRIVER]: DRIVER (default ena) is its default driver, the one
drivers_probe picks without an override; it starts bound to it when that driver is loaded.
Python 3.11 standard library only.
"""

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys

IN_CLOSE_WRITE = 0x00000008
IN_IGNORED = 0x00008000
IN_CLOEXEC = 0o2000000
EVENT_HEADER = struct.Struct("iIII")

PCI_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$")
DRIVER_RE = re.compile(r"^[a-z0-9_-]{1,64}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def emit(**fields):
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def error(path, value, reason):
    # stdout only: a test's log file may hold stdout and stderr through two file descriptions,
    # where lines written to both can overwrite each other.
    emit(op="error", path=path, value=value, reason=reason)


class Device:
    def __init__(self, pci, ifname, mac, default_driver):
        self.pci = pci
        self.ifname = ifname
        self.mac = mac
        self.default_driver = default_driver
        self.driver = ""
        self.override = ""


def parse_device(spec):
    match = re.match(r"^([^=]+)=([^,@]+)(?:,([^@]+))?(?:@(.+))?$", spec)
    if not match:
        raise ValueError(f"device {spec!r} is not PCI=IFNAME[,MAC][@DRIVER]")
    pci, ifname, mac, driver = match.groups()
    driver = driver or "ena"
    if not PCI_RE.match(pci):
        raise ValueError(f"{pci!r} is not a PCI address like 0000:00:06.0")
    if not IFNAME_RE.match(ifname):
        raise ValueError(f"{ifname!r} is not an interface name")
    if mac is not None and not MAC_RE.match(mac):
        raise ValueError(f"{mac!r} is not a lower-case MAC like 02:aa:00:00:00:01")
    if not DRIVER_RE.match(driver):
        raise ValueError(f"{driver!r} is not a driver name")
    return Device(pci, ifname, mac, driver)


class Inotify:
    """IN_CLOSE_WRITE watches on single files, through libc."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self.fd = self.libc.inotify_init1(IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.paths = {}

    def watch(self, path, handler):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), IN_CLOSE_WRITE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {path}")
        self.paths[wd] = (path, handler)

    def events(self):
        """Blocks for the next batch; yields (path, handler) per close-after-write, in order."""
        data = os.read(self.fd, 64 * 1024)
        offset = 0
        while offset < len(data):
            wd, mask, _cookie, length = EVENT_HEADER.unpack_from(data, offset)
            offset += EVENT_HEADER.size + length
            if mask & IN_IGNORED:
                self.paths.pop(wd, None)
            elif mask & IN_CLOSE_WRITE and wd in self.paths:
                yield self.paths[wd]


class Emulator:
    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.drivers = set()
        self.netdev_drivers = set(args.netdev_driver or ["ena"])
        self.netns = args.netns_path
        self.devices = {}
        for spec in args.device:
            device = parse_device(spec)
            self.devices[device.pci] = device
        self.inotify = Inotify()
        self.control = args.control

    # -- the tree --------------------------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @staticmethod
    def make_file(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="ascii"):
            pass

    @staticmethod
    def replace_link(path, target):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)

    def build(self, drivers):
        probe = self.path("bus/pci/drivers_probe")
        self.make_file(probe)
        self.inotify.watch(probe, self.on_probe)
        for driver in drivers:
            self.add_driver_dir(driver)
        for device in self.devices.values():
            base = self.path("bus/pci/devices", device.pci)
            override = os.path.join(base, "driver_override")
            self.make_file(override)
            for name, value in (("vendor", "0x1d0f\n"), ("device", "0xec20\n")):
                with open(os.path.join(base, name), "w", encoding="ascii") as f:
                    f.write(value)
            self.inotify.watch(override, lambda p, d=device: self.on_override(p, d))
            if device.default_driver in self.drivers:
                self.link_driver(device, device.default_driver, netns=False)
        if self.control:
            self.make_file(self.control)
            self.inotify.watch(self.control, self.on_control)

    def add_driver_dir(self, driver):
        for name, handler in (("bind", self.on_bind), ("unbind", self.on_unbind)):
            path = self.path("bus/pci/drivers", driver, name)
            self.make_file(path)
            self.inotify.watch(path, lambda p, h=handler, d=driver: h(p, d))
        self.drivers.add(driver)

    # The driver link changes last, so that once a writer sees it settled, the netdev is there
    # or gone as it is when a synchronous probe's or unbind's write(2) returns.
    def link_driver(self, device, driver, netns=True):
        device.driver = driver
        if driver in self.netdev_drivers:
            netdev = self.path("class/net", device.ifname)
            if netns:
                self.link_add(device)
            if device.mac:
                os.makedirs(netdev, exist_ok=True)
                with open(os.path.join(netdev, "address"), "w", encoding="ascii") as f:
                    f.write(device.mac + "\n")
            self.replace_link(os.path.join(netdev, "device"),
                              f"../../../bus/pci/devices/{device.pci}")
        self.replace_link(self.path("bus/pci/drivers", driver, device.pci),
                          f"../../devices/{device.pci}")
        self.replace_link(self.path("bus/pci/devices", device.pci, "driver"),
                          f"../../drivers/{driver}")

    def unlink_driver(self, device):
        driver, device.driver = device.driver, ""
        if driver in self.netdev_drivers:
            shutil.rmtree(self.path("class/net", device.ifname), ignore_errors=True)
            self.link_del(device)
        for path in (self.path("bus/pci/drivers", driver, device.pci),
                     self.path("bus/pci/devices", device.pci, "driver")):
            if os.path.lexists(path):
                os.unlink(path)

    # -- the link side ---------------------------------------------------------------------
    def ip(self, *args):
        command = ["nsenter", f"--net={self.netns}", "ip", *args]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            emit(op="link-error", command=" ".join(command), reason=done.stderr.strip())
        return done.returncode == 0

    def link_del(self, device):
        if self.netns and self.ip("link", "del", device.ifname):
            emit(op="link-del", ifname=device.ifname)

    def link_add(self, device):
        if not self.netns:
            return
        peer = device.ifname[:12] + "-pr"
        args = ["link", "add", device.ifname]
        if device.mac:
            args += ["address", device.mac]
        if self.ip(*args, "type", "veth", "peer", "name", peer):
            emit(op="link-add", ifname=device.ifname, mac=device.mac or "")

    # -- writes ----------------------------------------------------------------------------
    @staticmethod
    def take(path):
        """The value written, without one trailing newline; the file is emptied again first."""
        try:
            with open(path, "r", encoding="ascii", errors="replace") as f:
                value = f.read()
            os.truncate(path, 0)  # truncate(2) opens nothing: no close-after-write of our own
        except FileNotFoundError:
            return None
        if value == "":
            return None  # our own truncation raced a close, or an empty write: nothing to do
        return value[:-1] if value.endswith("\n") else value

    def device_of(self, path, value):
        if not PCI_RE.match(value):
            error(path, value, "not a PCI address (EINVAL)")
            return None
        device = self.devices.get(value)
        if device is None:
            error(path, value, "no such device (ENODEV)")
        return device

    def on_override(self, path, device):
        value = self.take(path)
        if value is None:
            return
        if value != "" and (not DRIVER_RE.match(value)):
            error(path, value, "not a driver name (EINVAL)")
            return
        device.override = value
        emit(op="override", pci=device.pci, driver=value)

    def on_unbind(self, path, driver):
        value = self.take(path)
        device = None if value is None else self.device_of(path, value)
        if device is None:
            return
        if device.driver != driver:
            error(path, value, f"bound to {device.driver or 'no driver'}, not {driver} (ENODEV)")
            return
        self.unlink_driver(device)
        emit(op="unbind", pci=device.pci, driver=driver)

    def on_bind(self, path, driver):
        value = self.take(path)
        device = None if value is None else self.device_of(path, value)
        if device is None:
            return
        if device.driver:
            error(path, value, f"already bound to {device.driver} (EBUSY)")
            return
        if device.override not in ("", driver):
            error(path, value, f"driver_override is {device.override} (ENODEV)")
            return
        self.link_driver(device, driver)
        emit(op="bind", pci=device.pci, driver=driver)

    def on_probe(self, path):
        value = self.take(path)
        device = None if value is None else self.device_of(path, value)
        if device is None:
            return
        if not device.driver:
            wanted = device.override or device.default_driver
            if wanted in self.drivers:
                self.link_driver(device, wanted)
        emit(op="probe", pci=device.pci, driver=device.driver)

    def on_control(self, path):
        value = self.take(path)
        if value is None:
            return
        words = value.split()
        if len(words) != 2 or words[0] not in ("load", "unload") or not DRIVER_RE.match(words[1]):
            error(path, value, "expected 'load <driver>' or 'unload <driver>'")
            return
        (self.unload if words[0] == "unload" else self.load)(path, words[1])

    def unload(self, path, driver):
        if driver not in self.drivers:
            error(path, driver, "not loaded")
            return
        for device in self.devices.values():
            if device.driver == driver:
                self.unlink_driver(device)
                emit(op="unbind", pci=device.pci, driver=driver)
        self.drivers.discard(driver)
        shutil.rmtree(self.path("bus/pci/drivers", driver), ignore_errors=True)
        emit(op="unload", driver=driver)

    def load(self, path, driver):
        if driver in self.drivers:
            error(path, driver, "loaded already")
            return
        self.add_driver_dir(driver)
        emit(op="load", driver=driver)
        for device in self.devices.values():
            if not device.driver and (device.override or device.default_driver) == driver:
                self.link_driver(device, driver)
                emit(op="bind", pci=device.pci, driver=driver)

    def run(self):
        while True:
            for path, handler in list(self.inotify.events()):
                handler(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--root", required=True, help="the directory that stands for /sys")
    parser.add_argument("--driver", action="append", default=[], help="a loaded driver")
    parser.add_argument("--device", action="append", default=[],
                        help="PCI=IFNAME[,MAC][@DRIVER], e.g. 0000:00:06.0=eth1,02:aa:00:00:00:01")
    parser.add_argument("--netdev-driver", action="append",
                        help="a driver whose devices are network interfaces (default ena)")
    parser.add_argument("--netns-path", help="delete and re-create the interfaces in this netns")
    parser.add_argument("--control", help="a file that takes 'load <drv>' / 'unload <drv>'")
    parser.add_argument("--ready-file", help="written once the tree is built and watched")
    args = parser.parse_args()
    for driver in args.driver:
        if not DRIVER_RE.match(driver):
            parser.error(f"{driver!r} is not a driver name")
    try:
        emulator = Emulator(args)
    except ValueError as e:
        parser.error(str(e))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    emulator.build(args.driver)
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w", encoding="ascii") as f:
            f.write(emulator.root + "\n")
        os.replace(args.ready_file + ".tmp", args.ready_file)
    emit(op="ready", root=emulator.root)
    emulator.run()


if __name__ == "__main__":
    main()
