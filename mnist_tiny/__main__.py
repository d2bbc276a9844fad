from mnist_tiny.cli.app import main

main()
