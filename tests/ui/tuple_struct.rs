use wyrmhole::Model;

#[derive(Model)]
struct TodoItem(i32, String);

fn main() {}
