import RobitCLI

await RobitCommand.main()
