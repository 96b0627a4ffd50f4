import RobitCLI
import RobitExec

ProcessMemory.tuneForLongRun()
// The runtime's sandbox processes become robit's children, reaped the moment they end (see Subreaper).
Subreaper.enable()
await RobitCommand.main()
