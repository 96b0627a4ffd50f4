import RobitCLI
import RobitExec

ProcessMemory.tuneForLongRun()
await RobitCommand.main()
