use wyrmhole::Model;

#[derive(Model)]
#[wyrm(route = todo_item)]
struct TodoItem {
    id: i32,
}

fn main() {}
