// A C++ firmware with a static object that has a constructor and a destructor: the start-up code must
// run the constructor before main (.init_array), and the link must resolve __dso_handle, which the
// compiler references to register the destructor.
#include <cstdint>

#include "eq_board.h"

namespace {

class Answer {
 public:
  Answer() : value_(42) {}
  ~Answer() { value_ = 0; }
  int value() const { return value_; }

 private:
  volatile int value_;
};

Answer answer;

}  // namespace

int main() {
  eq_board_init();
  const int value = answer.value();
  const uint8_t line[] = {'E', 'Q', '-', 'C', 'P', 'P', ' ', static_cast<uint8_t>('0' + value / 10),
                          static_cast<uint8_t>('0' + value % 10), '\n'};
  eq_port_write(line, sizeof(line));
  for (;;) {
  }
}
