/* The empd subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand's name), prints its own one-line errors to stderr and returns the
 * process exit status: 0 success, 1 failure, 2 bad usage. */
#ifndef EMPD_TRAINER_COMMANDS_H
#define EMPD_TRAINER_COMMANDS_H

int cmd_train(int argc, char **argv);
int cmd_shard(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_report(int argc, char **argv);

#endif
