#include "app.h"

int main(int argc, char** argv) { return slack_proxy::run_main(argc, argv); }
