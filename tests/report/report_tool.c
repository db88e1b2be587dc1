/* `empd report` as a program of its own (argv[0] stands for the subcommand's name), so its tests run
 * whatever the command table of empd holds. */
int cmd_report(int argc, char **argv);

int main(int argc, char **argv) { return cmd_report(argc, argv); }
