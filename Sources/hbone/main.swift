HBONECommand.main()
