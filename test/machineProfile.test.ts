// A machine saved before the device layout was part of its profile (the UART agent channel) is another machine.
import { machineDifference, machineProfile } from '../lib/machineProfile';

const facts = {
  qemuVersion: '7.2.22',
  machine: 'pc-i440fx-7.2',
  accel: 'tcg',
  memoryMiB: 512,
  vcpus: 1,
  kernelVersion: '6.1.0-57-cloud-amd64',
};

test('the device layout is the last part of a machine profile, and a profile without one differs in it', () => {
  const host = machineProfile({ ...facts, deviceLayout: 2 });
  expect(host).toBe('qemu-7.2.22/pc-i440fx-7.2/tcg/512m/1cpu/6.1.0-57-cloud-amd64/devices-2');
  const savedWithUart = 'qemu-7.2.22/pc-i440fx-7.2/tcg/512m/1cpu/6.1.0-57-cloud-amd64';
  expect(machineDifference(savedWithUart, host)).toBe('it differs in device layout devices-1 (host: devices-2)');
  expect(machineDifference(machineProfile({ ...facts, deviceLayout: 2, memoryMiB: 1024 }), host)).toBe(
    'it differs in RAM 1024m (host: 512m)',
  );
  // Layout 3 put the root on a disk: a machine whose root was in its RAM is another machine.
  expect(machineDifference(host, machineProfile({ ...facts, deviceLayout: 3 }))).toBe(
    'it differs in device layout devices-2 (host: devices-3)',
  );
});
