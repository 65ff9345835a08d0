use wyrmhole::Model;

#[derive(Model)]
#[wyrm(route = "todo-item", table = "todo_items")]
struct TodoItem {
    id: i32,
}

fn main() {}
