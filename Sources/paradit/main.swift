import ParaDiTCLI

ParaDiTCommand.main()
